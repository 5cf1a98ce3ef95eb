"""The dataset collector: grid filter, a short real collection, and the shipped datasets."""

import json

import numpy as np
import pytest

from dspo_ray.data import SplitConfig, find_dataset, load_task_data, load_trajectories
from dspo_ray.data.collect import CollectConfig, collect, grid_filter, summarize_returns
from dspo_ray.data.dsrl import SHIPPED_DATASET_DIR
from dspo_ray.tasks import TASKS, get_task


def test_grid_filter_keeps_sparse_cells_and_thins_crowded_ones():
    rng = np.random.default_rng(0)
    # 900 episodes crowded in one corner of the plane, 30 spread over the rest
    crowd_c, crowd_r = rng.uniform(0, 1, 900), rng.uniform(0, 1, 900)
    spread_c, spread_r = rng.uniform(5, 100, 30), rng.uniform(5, 100, 30)
    costs, rewards = np.r_[crowd_c, spread_c], np.r_[crowd_r, spread_r]
    idx = grid_filter(costs, rewards, keep=100, cost_bins=20, reward_bins=20, seed=1)
    assert len(idx) == 100 and len(set(idx)) == 100 and (np.diff(idx) > 0).all()
    assert set(range(900, 930)) <= set(idx.tolist()), "every sparse trade-off must be kept"
    assert (idx < 900).sum() == 70
    # seeded, and the identity when nothing needs thinning
    np.testing.assert_array_equal(idx, grid_filter(costs, rewards, 100, 20, 20, seed=1))
    assert not np.array_equal(idx, grid_filter(costs, rewards, 100, 20, 20, seed=2))
    np.testing.assert_array_equal(grid_filter(costs, rewards, 5000), np.arange(930))


def test_grid_filter_is_even_across_full_cells():
    costs = np.repeat([0.0, 1.0, 2.0], [50, 20, 5])  # three cells (one reward value)
    idx = grid_filter(costs, np.zeros(75), keep=30, cost_bins=3, reward_bins=1)
    counts = np.bincount(costs[idx].astype(int), minlength=3)
    assert counts.tolist() == [13, 12, 5] or counts.tolist() == [12, 13, 5]


def test_short_collection_writes_a_valid_dsrl_file(tmp_path):
    """A real (tiny) run on CarCircle: the file loads, is named the DSRL way, and is reproducible."""
    cfg = CollectConfig(task="CarCircle", episodes=6, keep=4, n_envs=2, steps_per_env=150, seed=3)
    result = collect(cfg, tmp_path / "a", log=lambda m: None)
    spec = get_task("CarCircle")
    assert result.path.name == f"{spec.dsrl_filename_prefix}4.hdf5" and result.kept == 4
    assert result.recorded == 6
    trajs = load_trajectories(result.path, "CarCircle")
    assert len(trajs) == 4 and all(len(t) == spec.max_episode_steps for t in trajs)
    assert all(t.timeouts[-1] and not t.terminals.any() for t in trajs)
    # recorded actions are the executed ones: inside the action bounds
    assert all(np.abs(t.actions).max() <= 1.0 for t in trajs)
    # observations chain: the next observation of step t is the observation of step t+1
    for t in trajs:
        np.testing.assert_array_equal(t.next_observations[:-1], t.observations[1:])
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    assert sidecar["config"]["task"] == "CarCircle" and sidecar["kept"] == 4
    assert sidecar["stats"]["kept"]["trajectories"] == 4
    again = collect(cfg, tmp_path / "b", log=lambda m: None)
    for a, b in zip(trajs, load_trajectories(again.path, "CarCircle")):
        np.testing.assert_array_equal(a.actions, b.actions)
        np.testing.assert_array_equal(a.costs, b.costs)


SHIPPED = sorted(p.name.split(".hdf5")[0] for p in SHIPPED_DATASET_DIR.glob("*.hdf5.xz"))
SHIPPED_TASKS = [name for name, spec in TASKS.items()
                 if any(s.startswith(spec.dsrl_filename_prefix) for s in SHIPPED)]


def test_some_datasets_are_shipped():
    assert SHIPPED_TASKS, f"no shipped dataset in {SHIPPED_DATASET_DIR}"
    for name in SHIPPED:  # every shipped file belongs to a registry task, with its sidecar
        assert any(name.startswith(t.dsrl_filename_prefix) for t in TASKS.values()), name
        assert (SHIPPED_DATASET_DIR / f"{name}.json").is_file(), f"{name}: no JSON sidecar"


@pytest.mark.parametrize("task", SHIPPED_TASKS)
def test_shipped_dataset_gives_the_papers_split(task, monkeypatch, tmp_path):
    """Each shipped dataset loads, and supports Table 3's split with a reward-cost spread."""
    monkeypatch.setenv("DSRL_DATASET_DIR", str(tmp_path / "none"))  # only the shipped file
    spec = get_task(task)
    path = find_dataset(task)
    trajs = load_trajectories(path, task)
    costs = np.array([t.cost_return for t in trajs])
    rewards = np.array([t.reward_return for t in trajs])
    assert costs.max() <= spec.dsrl_max_cost + 1e-3, "episodes above DSRL's max cost were kept"
    safe = costs <= spec.cost_limit
    assert safe.sum() >= spec.n_safe and (~safe).sum() >= 0.2 * len(trajs), "no spread of safety"
    assert rewards.std() > 0 and costs.std() > 0
    # the sidecar's figures (quoted in datasets/README.md) are those of the shipped file
    sidecar = json.loads(next(SHIPPED_DATASET_DIR.glob(f"{spec.dsrl_filename_prefix}*.json")).read_text())
    assert sidecar["stats"]["kept"] == summarize_returns(trajs, spec.cost_limit)
    data, truth = load_task_data(task, path, SplitConfig(seed=0))
    assert len(data.safe_demos) == spec.n_safe and len(data.unlabelled) == spec.n_unlabelled
    assert 0 < truth.unlabelled_is_safe.mean() < 1
