"""The dataset collector: grid filter, a short real collection, and the shipped datasets."""

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest

from dspo_ray.data import SplitConfig, find_dataset, load_task_data, load_trajectories
from dspo_ray.data.collect import (CollectConfig, collect, collect_task, grid_filter, plan_runs,
                                   summarize_returns)
from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
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


def test_thinning_keeps_the_asked_safe_share_when_the_episodes_allow_it():
    from dspo_ray.data.collect import thin_episodes

    rng = np.random.default_rng(0)
    # costs spread evenly over 0-100 with a limit of 10: the plain grid keeps about 10% safe
    costs, rewards = rng.uniform(0, 100, 3000), rng.uniform(0, 500, 3000)
    plain = thin_episodes(costs, rewards, keep=600, cost_limit=10, seed=1)
    np.testing.assert_array_equal(plain, grid_filter(costs, rewards, 600, seed=1))
    assert (costs[plain] <= 10).mean() < 0.15
    idx = thin_episodes(costs, rewards, keep=600, cost_limit=10, min_safe_share=0.3, seed=1)
    assert len(idx) == 600 and len(set(idx)) == 600 and (np.diff(idx) > 0).all()
    assert (costs[idx] <= 10).sum() == 180
    # the safe ones still span the reward range, and the unsafe ones the cost range
    assert np.ptp(rewards[idx][costs[idx] <= 10]) > 400 and costs[idx].max() > 95
    # fewer safe episodes than the share asks for: all of them, the rest unsafe
    few = np.r_[rng.uniform(0, 10, 20), rng.uniform(10.5, 100, 980)]
    idx = thin_episodes(few, rng.uniform(0, 1, 1000), keep=300, cost_limit=10, min_safe_share=0.5)
    assert len(idx) == 300 and (few[idx] <= 10).sum() == 20


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
    # reproducible, and the same data as one run of the several-runs collector (so the shipped
    # files made with collect() are remade by `experiments/collect.py --runs 1`)
    one_run = collect_task(plan_runs("CarCircle", 1, 6, seed=3, base=cfg), tmp_path / "b",
                           keep=4, log=lambda m: None)
    assert one_run.path.read_bytes() == result.path.read_bytes()


# ------------------------------------------------------- several runs per task: resumable, on Ray

TINY = CollectConfig(task="CarCircle", n_envs=2, steps_per_env=150)  # 2 envs x 300-step episodes


def _files(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.iterdir())}


def test_two_run_collection_splits_and_resumes_without_retraining(tmp_path):
    runs = plan_runs("CarCircle", runs=2, episodes_per_run=4, seed=5, base=TINY)
    assert [r.name for r in runs] == ["run-0-seed5", "run-1-seed6"]
    assert runs[0].config.cost_limit_end < runs[1].config.cost_limit_end  # two schedules
    out = tmp_path / "out"
    result = collect_task(runs, out, keep=6, log=lambda m: None)
    assert result.trained_runs == 2 and result.recorded == 8 and result.kept == 6
    # every recorded episode of each run is kept in its own file
    run_dir = out / "runs" / "CarCircle"
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "run-0-seed5.hdf5", "run-0-seed5.json", "run-1-seed6.hdf5", "run-1-seed6.json"]
    assert all(len(load_trajectories(r.path(out), "CarCircle")) == 4 for r in runs)
    # the DSRL file, its summary and its scatter plot
    assert result.path.name == "SafetyCarCircle-v0-100-6.hdf5"
    summary = json.loads(result.path.with_suffix(".json").read_text())
    assert summary["config"]["runs"] == 2 and len(summary["stats"]["runs"]) == 2
    assert result.path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    trajs = load_trajectories(result.path, "CarCircle")
    assert summary["stats"]["kept"] == summarize_returns(trajs, 10.0)
    assert sum(t.cost_return <= 10 for t in trajs) >= 1, "the split needs a safe demonstration"
    data, truth = load_task_data("CarCircle", result.path, SplitConfig(n_safe=1, n_unlabelled=5))
    assert len(data.safe_demos) == 1 and len(data.unlabelled) == 5
    assert not hasattr(data.unlabelled[0], "costs")  # the learner's side has no cost labels

    # resume: everything finished -> nothing retrained, run files untouched, same dataset
    before, dataset = _files(run_dir), result.path.read_bytes()
    again = collect_task(runs, out, keep=6, log=lambda m: None)
    assert again.trained_runs == 0 and _files(run_dir) == before
    assert again.path.read_bytes() == dataset
    # an interrupted collection (run 1's summary never written) redoes only run 1
    runs[1].summary_path(out).unlink()
    run0 = {k: v for k, v in before.items() if k.startswith("run-0")}
    third = collect_task(runs, out, keep=6, log=lambda m: None)
    assert third.trained_runs == 1
    assert {k: v for k, v in _files(run_dir).items() if k.startswith("run-0")} == run0
    assert third.path.read_bytes() == dataset  # seeded: the redone run gives the same episodes
    # finished runs made with other settings are refused, not silently mixed in
    with pytest.raises(ValueError, match="different config"):
        collect_task(plan_runs("CarCircle", 2, 5, seed=5, base=TINY), out, log=lambda m: None)


def test_one_run_on_a_real_local_ray(tmp_path, monkeypatch, request):
    ray = pytest.importorskip("ray")
    from dspo_ray.distributed.collect import collect_on_ray

    assert not ray.is_initialized()
    # a short RAY_TMPDIR of its own (Ray's socket paths must stay under 108 bytes)
    ray_tmp = tempfile.TemporaryDirectory(prefix="ray-", dir="/tmp")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp.name)
    from distributed_helpers import ray_home

    monkeypatch.setenv("HOME", ray_home())  # the one Ray auth token of this pytest process
    request.addfinalizer(lambda: ray_tmp.cleanup())
    runs = plan_runs("CarCircle", runs=1, episodes_per_run=2, seed=1, base=TINY)
    results = collect_on_ray({"CarCircle": runs}, tmp_path / "out", keep=2, num_cpus=2,
                             progress=False, log=lambda m: None)
    assert not ray.is_initialized(), "the Ray it started is shut down"
    result = results["CarCircle"]
    assert result.trained_runs == 1 and result.recorded == 2
    assert len(load_trajectories(result.path, "CarCircle")) == 2 - result.dropped_over_max_cost
    # the Ray task wrote the same run as a local one would (seeded, one torch thread)
    local = collect_task(runs, tmp_path / "local", keep=2, log=lambda m: None)
    assert local.path.read_bytes() == result.path.read_bytes()
    # resuming on the Ray path: nothing left to run, so Ray is not even started
    again = collect_on_ray({"CarCircle": runs}, tmp_path / "out", keep=2, progress=False,
                           log=lambda m: None)
    assert again["CarCircle"].trained_runs == 0 and not ray.is_initialized()


def _cli():
    from dspo_ray.commands.collect import main

    return main


@pytest.mark.parametrize("args, message", [
    (["--task", "Nope"], "invalid choice: 'Nope'"),
    ([], "--task is required"),
    (["--task", "CarCircle", "--runs", "0"], "--runs must be >= 1"),
    (["--task", "CarCircle", "--episodes-per-run", "-3"], "--episodes-per-run must be >= 1"),
    (["--task", "CarCircle", "--budget", "2", "--runs", "3"], "fewer than --runs 3"),
    (["--task", "CarCircle", "--no-ray", "--address", "auto"], "--address needs --ray"),
    (["--task", "CarCircle", "--cost-limit-end", "-1"], "--cost-limit-end must be >= 0"),
])
def test_bad_arguments_fail_clearly(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        _cli()(args)
    assert e.value.code == 2 and message in capsys.readouterr().err
    with pytest.raises(ValueError, match="runs must be >= 1"):
        plan_runs("CarCircle", 0, 10)


SHIPPED = sorted(p.name[:-len(PACK_SUFFIX)] for p in SHIPPED_DATASET_DIR.glob(f"*{PACK_SUFFIX}"))
SHIPPED_TASKS = [name for name, spec in TASKS.items()
                 if any(s.startswith(spec.dsrl_filename_prefix) for s in SHIPPED)]


def test_some_datasets_are_shipped():
    assert SHIPPED_TASKS, f"no shipped dataset in {SHIPPED_DATASET_DIR}"
    for name in SHIPPED:  # every shipped file belongs to a registry task, with its sidecar
        assert any(name.startswith(t.dsrl_filename_prefix) for t in TASKS.values()), name
        assert (SHIPPED_DATASET_DIR / f"{name}.json").is_file(), f"{name}: no JSON sidecar"
        assert (SHIPPED_DATASET_DIR / f"{name}.png").is_file(), f"{name}: no scatter plot"


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
