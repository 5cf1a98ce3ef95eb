"""PointGoal1 data from the rule-based navigation driver: its styles, its behaviour in the real
simulator, and a short collection written, loaded and split."""

import json

import numpy as np
import pytest

from dspo_ray.data import SplitConfig, load_task_data, load_trajectories
from dspo_ray.data.collect import summarize_returns
from dspo_ray.data.nav_driver import NavConfig, NavStyle, collect_nav, draw_style, drive_episode
from dspo_ray.data.scripted import episode_seed
from dspo_ray.envs import make_env
from dspo_ray.tasks import get_task


def test_styles_are_seeded_vary_and_only_goal_tasks_are_driven():
    cfg = NavConfig(task="PointGoal1")
    styles = [draw_style(cfg, np.random.default_rng([k, 1])) for k in range(60)]
    assert styles == [draw_style(cfg, np.random.default_rng([k, 1])) for k in range(60)]
    speeds = np.array([s.speed for s in styles])
    assert cfg.speed_range[0] <= speeds.min() and speeds.max() <= cfg.speed_range[1]
    assert len(set(speeds)) > 50 and (speeds < 0.3).any() and (speeds > 0.8).any()
    avoid = np.array([s.avoidance for s in styles])
    assert 5 <= (avoid == 0).sum() <= 30 and (avoid > 2).any()  # reckless and careful drivers both
    with pytest.raises(ValueError, match="PointGoal1, PointGoal2, not 'CarCircle'"):
        NavConfig(task="CarCircle").resolved()


FAST = dict(speed=1.0, turn_gain=3.0, margin=0.3, action_noise=0.0)
# measured (safety-gymnasium 1.0, 300 steps): seed 2 without avoidance reaches 5 goals, reward 8.4;
# seed 11 costs 61 without avoidance, 0 with avoidance 4 (seeds 0-11: 96 and 14 in all)
REACH_STEPS, REACH_GOALS, REACH_REWARD = 300, 4, 7.0
AVOID_STEPS, AVOID_SEEDS, AVOID_MIN_COST = 300, (11,), 30.0


def test_controller_reaches_goals():
    """Ignoring the hazards, it drives from goal to goal (a goal is worth its distance + 1)."""
    env = make_env("PointGoal1", seed=0)
    trajectory = drive_episode(env, NavStyle(avoidance=0.0, **FAST), seed=2, max_steps=REACH_STEPS)
    goals = int((trajectory.rewards > 0.5).sum())
    assert goals >= REACH_GOALS and trajectory.reward_return > REACH_REWARD


def test_hazard_avoidance_lowers_the_cost():
    env = make_env("PointGoal1", seed=0)
    costs = {}
    for avoidance in (0.0, 4.0):
        costs[avoidance] = [drive_episode(env, NavStyle(avoidance=avoidance, **FAST), seed=s,
                                          max_steps=AVOID_STEPS).cost_return for s in AVOID_SEEDS]
    assert sum(costs[0.0]) >= AVOID_MIN_COST and sum(costs[4.0]) < sum(costs[0.0]) / 2, costs


def test_short_collection_loads_and_splits(tmp_path):
    """Five 100-step episodes, written as DSRL's files are, loaded and split; a rerun reuses them."""
    spec = get_task("PointGoal1")
    cfg = NavConfig(task="PointGoal1", episodes=5, keep=4, seed=3, max_steps=100)
    logs = []
    result = collect_nav(cfg, tmp_path, log=logs.append)
    assert result.path.name == "SafetyPointGoal1Gymnasium-v0-100-4.hdf5"
    assert result.recorded == 5 and result.kept == 4
    trajs = load_trajectories(result.path, spec)
    assert len(trajs) == 4
    for t in trajs:
        assert t.observations.shape == (100, spec.obs_dim) and t.actions.shape == (100, 2)
        assert t.timeouts[-1] and not t.timeouts[:-1].any() and not t.terminals.any()
        assert np.abs(t.actions).max() <= 1.0  # the executed (clipped) actions
        np.testing.assert_array_equal(t.next_observations[:-1], t.observations[1:])
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    assert sidecar["config"]["driver"] == "nav" and sidecar["stats"]["kept"] == summarize_returns(
        trajs, spec.cost_limit)
    assert result.path.with_suffix(".png").is_file()
    chunk = json.loads((tmp_path / "runs" / "PointGoal1" / "nav-seed3" / "chunk-00000.json").read_text())
    assert [s["speed"] for s in chunk["styles"]] == [
        draw_style(cfg, np.random.default_rng([episode_seed(3, k), 1])).speed for k in range(5)]
    data, truth = load_task_data("PointGoal1", result.path,
                                 SplitConfig(n_safe=1, n_unlabelled=3, cost_limit=1e6))
    assert len(data.safe_demos) == 1 and len(data.unlabelled) == 3
    before = result.path.read_bytes()
    again = collect_nav(cfg, tmp_path, log=logs.append)
    assert any("reusing 1 recorded chunk(s)" in m for m in logs)
    assert again.path.read_bytes() == before


def test_cli_rule_driver_only_where_there_is_one(capsys):
    from dspo_ray.commands.collect import main

    with pytest.raises(SystemExit) as e:
        main(["--task", "CarCircle", "--driver", "rule"])
    assert e.value.code == 2 and "--driver rule: no rule-based driver for CarCircle" in capsys.readouterr().err


def test_chunks_driven_on_a_real_local_ray_make_the_same_file(tmp_path, monkeypatch, request):
    """Three chunks driven as Ray tasks in parallel: the same file, byte for byte, as one process."""
    import tempfile

    ray = pytest.importorskip("ray")
    from distributed_helpers import ray_home

    from dspo_ray.data import scripted
    from dspo_ray.distributed.collect import chunks_on_ray

    assert not ray.is_initialized()
    ray_tmp = tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp")  # Ray's socket paths stay short
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp.name)
    monkeypatch.setenv("HOME", ray_home())
    request.addfinalizer(lambda: ray_tmp.cleanup())
    # chunks of 2 episodes (25 in a collection: one PointGoal1 reset takes about a second), so
    # five episodes are three Ray tasks on two CPUs, the last one short
    monkeypatch.setattr(scripted, "CHUNK", 2)
    cfg = NavConfig(task="PointGoal1", episodes=5, keep=5, seed=4, max_steps=20)
    with pytest.raises(ValueError, match="no rule-based driver 'ppo'"):
        chunks_on_ray("ppo", cfg)
    on_ray = collect_nav(cfg, tmp_path / "ray", log=lambda m: None,
                         run=chunks_on_ray("nav", cfg.resolved(), num_cpus=2, progress=False))
    assert not ray.is_initialized(), "the Ray it started is shut down"
    chunks = sorted((tmp_path / "ray" / "runs" / "PointGoal1" / "nav-seed4").glob("chunk-*.json"))
    assert [json.loads(c.read_text())["episodes"] for c in chunks] == [2, 2, 1]
    local = collect_nav(cfg, tmp_path / "local", log=lambda m: None)
    assert on_ray.recorded == local.recorded == 5
    assert on_ray.path.read_bytes() == local.path.read_bytes()
