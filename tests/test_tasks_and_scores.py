import pytest

from dspo_ray.evaluation import EpisodeResult, normalized_cost, normalized_reward, summarize
from dspo_ray.tasks import TASKS, UnknownTaskError, get_task, tasks_in_suite


def test_registry_matches_table_3():
    assert len(TASKS) == 23
    assert [len(tasks_in_suite(s)) for s in ("SafetyGym", "BulletGym", "MetaDrive")] == [15, 5, 3]
    for t in TASKS.values():
        assert t.n_safe == 15
        assert (t.cost_limit, t.n_unlabelled) == {"SafetyGym": (20, 800), "BulletGym": (10, 500),
                                                  "MetaDrive": (10, 400)}[t.suite]
        assert t.reward_max > t.reward_min


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownTaskError, match="unknown task 'CarCircel'.*CarCircle.*hardsparse"):
        get_task("CarCircel")


def test_normalised_scores_hand_checked():
    # CarCircle: R_min 3.484, R_max 534.3061, cost limit 10
    assert normalized_reward("CarCircle", 3.484) == pytest.approx(0.0)
    assert normalized_reward("CarCircle", 534.3061) == pytest.approx(1.0)
    assert normalized_reward("CarCircle", 268.89505) == pytest.approx(0.5)
    assert normalized_cost("CarCircle", 5.0) == pytest.approx(0.5)
    assert normalized_cost("CarCircle", 0.0, cost_limit=0) == pytest.approx(1.0)  # (0+1)/(0+1)
    assert normalized_cost("CarCircle", 3.0, cost_limit=0) == pytest.approx(4.0)
    # PointGoal1: R_min 0.01196, R_max 30.0711, limit 20
    assert normalized_reward("PointGoal1", 15.0) == pytest.approx((15 - 0.01196) / (30.0711 - 0.01196))


def test_summary_uses_episode_means():
    eps = [EpisodeResult(100.0, 4.0, 300), EpisodeResult(300.0, 20.0, 300)]
    r = summarize("CarCircle", eps)
    assert r.reward_mean == 200.0 and r.reward_std == 100.0 and r.cost_mean == 12.0
    assert r.normalized_cost == pytest.approx(1.2) and not r.safe
    assert r.normalized_reward == pytest.approx((200 - 3.484) / (534.3061 - 3.484))
