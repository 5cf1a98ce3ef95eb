"""DSRL files, validation errors and the cost-label-free split, on real HDF5 files."""

import dataclasses
import warnings

import h5py
import numpy as np
import pytest

from dspo_ray.data import (CostedTrajectory, DatasetError, SplitConfig, SplitError,
                           TrailingRowsWarning, Trajectory, find_dataset, load_trajectories,
                           make_cost_label_free_split, read_dsrl, stack_transitions, write_dsrl)
from dspo_ray.tasks import TASKS, get_task

TASK = "CarCircle"  # obs 8, act 2, cost limit 10


def synthetic_episode(rng, length, cost_return, reward_per_step, terminal=False):
    spec = get_task(TASK)
    costs = np.zeros(length, np.float32)
    costs[: int(cost_return)] = 1.0
    return CostedTrajectory(
        observations=rng.normal(size=(length, spec.obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, size=(length, spec.act_dim)).astype(np.float32),
        rewards=np.full(length, reward_per_step, np.float32),
        next_observations=rng.normal(size=(length, spec.obs_dim)).astype(np.float32),
        terminals=np.eye(length, dtype=bool)[-1] if terminal else np.zeros(length, bool),
        timeouts=np.zeros(length, bool) if terminal else np.eye(length, dtype=bool)[-1],
        costs=costs,
    )


@pytest.fixture
def episodes():
    """40 episodes: 20 safe (cost 0..9) and 20 unsafe (cost 11..30), rewards 1..40 per step."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(40):
        cost = i % 10 if i % 2 == 0 else 11 + i % 20
        out.append(synthetic_episode(rng, 20 + i, cost, float(i + 1), terminal=(i % 3 == 0)))
    return out


def test_hdf5_round_trip(tmp_path, episodes):
    path = write_dsrl(tmp_path / "SafetyCarCircle-v0-100-40.hdf5", episodes)
    back = load_trajectories(path, TASK)
    assert len(back) == len(episodes)
    for a, b in zip(episodes, back):
        for f in dataclasses.fields(CostedTrajectory):
            np.testing.assert_array_equal(getattr(a, f.name), getattr(b, f.name))
    with h5py.File(path) as f:  # the on-disk layout is DSRL's
        assert f["observations"].dtype == np.float32 and f["terminals"].dtype == bool
        assert f["rewards"].shape == (sum(len(e) for e in episodes),)
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_dataset_digest_names_the_data_not_the_file(tmp_path, episodes):
    """Results name their dataset by dspo_ray.provenance.dataset_sha256: the same columns in two
    files (written apart, so their bytes may differ) share it; one changed cost changes it."""
    from dataclasses import replace

    from dspo_ray.provenance import dataset_sha256

    first = write_dsrl(tmp_path / "a" / "SafetyCarCircle-v0-100-40.hdf5", episodes)
    second = write_dsrl(tmp_path / "b" / "SafetyCarCircle-v0-100-40.hdf5", episodes)
    edited = list(episodes)
    edited[0] = replace(edited[0], costs=edited[0].costs + 1.0)
    other = write_dsrl(tmp_path / "c" / "SafetyCarCircle-v0-100-40.hdf5", edited)
    assert dataset_sha256(first) == dataset_sha256(second)
    assert dataset_sha256(first) != dataset_sha256(other)
    with pytest.raises(DatasetError, match="no such file"):
        dataset_sha256(tmp_path / "missing.hdf5")


def test_reads_dsrl_column_vectors_and_finds_file(tmp_path, episodes, monkeypatch):
    path = write_dsrl(tmp_path / "SafetyCarCircle-v0-100-40.hdf5", episodes)
    with h5py.File(path, "a") as f:  # DSRL stores some columns as (N, 1)
        r = f["rewards"][()]
        del f["rewards"]
        f["rewards"] = r[:, None]
    assert read_dsrl(path, TASK)["rewards"].shape == r.shape
    write_dsrl(tmp_path / "SafetyCarCircle-v0-100-7.hdf5", episodes[:7])
    monkeypatch.setenv("DSRL_DATASET_DIR", str(tmp_path))
    assert find_dataset(TASK) == path  # the file with the most trajectories
    from dspo_ray.data import shipping as shipping_module

    monkeypatch.setattr(shipping_module, "SHIPPED_DATASET_DIR", tmp_path / "no-shipped-data")
    monkeypatch.setattr(shipping_module, "SHIPPED_CACHE_DIR", tmp_path / "no-cache")
    # a task with a recipe: the command that builds it; one without: how to collect it
    with pytest.raises(DatasetError, match="no dataset for task 'DroneRun'.*'dspo-collect --build "
                                           r"DroneRun' \(about 8 min on 2 cores\)"):
        find_dataset("DroneRun")
    with pytest.raises(DatasetError, match="no dataset for task 'CarGoal1'.*collect.py --task CarGoal1"):
        find_dataset("CarGoal1")


def _rewrite(path, key, value):
    with h5py.File(path, "a") as f:
        del f[key]
        if value is not None:
            f[key] = value


@pytest.mark.parametrize("problem, edit, message", [
    ("missing key", lambda d: ("costs", None), r"missing key\(s\) \['costs'\]"),
    ("wrong obs dim", lambda d: ("observations", np.zeros((d, 5), np.float32)),
     r"'observations' has shape \(\d+, 5\), task CarCircle needs"),
    ("nan", lambda d: ("rewards", np.r_[np.ones(d - 1), np.nan].astype(np.float32)),
     r"'rewards' holds 1 NaN/inf value\(s\), first at row"),
    ("unterminated", lambda d: ("timeouts", np.zeros(d, bool)), r"no trajectory ends in the file"),
])
def test_bad_files_name_the_problem(tmp_path, episodes, problem, edit, message):
    path = write_dsrl(tmp_path / "data.hdf5", episodes[:3])
    n = sum(len(e) for e in episodes[:3])
    key, value = edit(n)
    if problem == "unterminated":
        _rewrite(path, "terminals", np.zeros(n, bool))
    _rewrite(path, key, value)
    with pytest.raises(DatasetError, match=message) as err:
        read_dsrl(path, TASK)
    assert str(path) in str(err.value)


def test_not_hdf5_and_missing_file(tmp_path):
    junk = tmp_path / "junk.hdf5"
    junk.write_text("not hdf5")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        read_dsrl(junk, TASK)
    with pytest.raises(DatasetError, match="no such file"):
        read_dsrl(tmp_path / "absent.hdf5", TASK)


def test_wrong_task_shape_is_caught(tmp_path, episodes):
    path = write_dsrl(tmp_path / "data.hdf5", episodes[:2])
    with pytest.raises(DatasetError, match="DroneRun needs"):
        read_dsrl(path, "DroneRun")


# DSRL's dataset table: the published file of each of the paper's 23 tasks
DSRL_FILES = {
    "CarButton1": "SafetyCarButton1Gymnasium-v0-250-2656.hdf5",
    "CarButton2": "SafetyCarButton2Gymnasium-v0-300-3755.hdf5",
    "CarGoal1": "SafetyCarGoal1Gymnasium-v0-120-1671.hdf5",
    "CarGoal2": "SafetyCarGoal2Gymnasium-v0-200-4105.hdf5",
    "CarPush1": "SafetyCarPush1Gymnasium-v0-200-2871.hdf5",
    "CarPush2": "SafetyCarPush2Gymnasium-v0-250-4407.hdf5",
    "PointButton1": "SafetyPointButton1Gymnasium-v0-200-2268.hdf5",
    "PointButton2": "SafetyPointButton2Gymnasium-v0-250-3288.hdf5",
    "PointGoal1": "SafetyPointGoal1Gymnasium-v0-100-2022.hdf5",
    "PointGoal2": "SafetyPointGoal2Gymnasium-v0-200-3442.hdf5",
    "PointPush1": "SafetyPointPush1Gymnasium-v0-150-2379.hdf5",
    "PointPush2": "SafetyPointPush2Gymnasium-v0-200-3242.hdf5",
    "HalfCheetahVel": "SafetyHalfCheetahVelocityGymnasium-v1-250-2495.hdf5",
    "SwimmerVel": "SafetySwimmerVelocityGymnasium-v1-200-1686.hdf5",
    "Walker2dVel": "SafetyWalker2dVelocityGymnasium-v1-300-2729.hdf5",
    "AntCircle": "SafetyAntCircle-v0-200-5728.hdf5",
    "AntRun": "SafetyAntRun-v0-150-1816.hdf5",
    "CarCircle": "SafetyCarCircle-v0-100-1450.hdf5",
    "DroneCircle": "SafetyDroneCircle-v0-100-1923.hdf5",
    "DroneRun": "SafetyDroneRun-v0-140-1990.hdf5",
    "easydense": "SafeMetaDrive-easydense-v0-85-1000.hdf5",
    "mediummean": "SafeMetaDrive-mediummean-v0-50-1000.hdf5",
    "hardsparse": "SafeMetaDrive-hardsparse-v0-85-1000.hdf5",
}


def test_registry_knows_dsrls_published_file_names():
    assert set(DSRL_FILES) == set(TASKS)
    for name, spec in TASKS.items():
        assert spec.dsrl_published_filename == DSRL_FILES[name]
        assert DSRL_FILES[name].startswith(spec.dsrl_filename_prefix)


def _dsrl_like_file(path, spec, lengths, trailing=0, seed=0):
    """A file written the way DSRL's published ones are, quirks included: float64 observations,
    (N, 1) float flag columns and rewards, one end row with both terminal and timeout set, extra
    keys and a group, and ``trailing`` rows after the last episode end."""
    rng = np.random.default_rng(seed)
    n = sum(lengths) + trailing
    ends = np.cumsum(lengths) - 1
    terminals = np.zeros((n, 1), np.float32)
    timeouts = np.zeros((n, 1), np.float32)
    terminals[ends[0]] = 1.0
    timeouts[ends[1:]] = 1.0
    terminals[ends[-1]] = 1.0  # both flags on one row
    with h5py.File(path, "w") as f:
        f["observations"] = rng.normal(size=(n, spec.obs_dim))  # float64
        f["next_observations"] = rng.normal(size=(n, spec.obs_dim))
        f["actions"] = rng.uniform(-1, 1, (n, spec.act_dim)).astype(np.float32)
        f["rewards"] = rng.normal(size=(n, 1))
        f["costs"] = (rng.uniform(size=n) < 0.1).astype(np.float64)
        f["terminals"] = terminals
        f["timeouts"] = timeouts
        f["infos/goal_met"] = np.zeros(n, bool)  # a group
        f["qpos"] = np.zeros((n, 3))  # an extra key
    return path


@pytest.mark.parametrize("task", ["CarCircle", "hardsparse"])
def test_reads_dsrl_files_as_they_are(tmp_path, monkeypatch, task):
    spec = get_task(task)
    folder = tmp_path / "dsrl"
    folder.mkdir()
    path = _dsrl_like_file(folder / spec.dsrl_published_filename, spec, [5, 7, 4], trailing=3)
    monkeypatch.setenv("DSRL_DATASET_DIR", str(folder))
    assert find_dataset(task) == path  # DSRL's own name is found (MetaDrive: -85-, not -85.01-)
    with pytest.warns(TrailingRowsWarning, match=r"rows 16\.\.18 \(3 row\(s\)\) end no trajectory"):
        trajs = load_trajectories(path, task)
    assert [len(t) for t in trajs] == [5, 7, 4]
    assert trajs[-1].terminals[-1] and trajs[-1].timeouts[-1]
    for t in trajs:
        assert t.observations.dtype == np.float32 and t.observations.shape[1] == spec.obs_dim
        assert t.rewards.dtype == np.float32 and t.rewards.ndim == 1
        assert t.terminals.dtype == bool and t.timeouts.dtype == bool
        assert (t.terminals | t.timeouts).sum() == 1 and (t.terminals[-1] or t.timeouts[-1])
    with h5py.File(path) as f:
        np.testing.assert_array_equal(trajs[1].observations, f["observations"][5:12].astype(np.float32))
    # without trailing rows: no warning
    clean = _dsrl_like_file(tmp_path / "clean.hdf5", spec, [5, 7, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_trajectories(clean, task)) == 3


def test_split_counts_safety_and_no_costs(episodes):
    data, truth = make_cost_label_free_split(episodes, TASK, SplitConfig(n_safe=5, n_unlabelled=20, seed=3))
    assert len(data.safe_demos) == 5 and len(data.unlabelled) == 20
    assert (truth.demo_cost_returns <= 10).all()
    # top_return: the 5 safe episodes with the highest returns (reward i+1 per step, length 20+i)
    safe_returns = sorted((e.reward_return for e in episodes if e.cost_return <= 10), reverse=True)
    assert [d.reward_return for d in data.safe_demos] == pytest.approx(safe_returns[:5])
    # the learner side carries no cost in any form
    for t in data.all_trajectories:
        assert type(t) is Trajectory and not hasattr(t, "costs") and not hasattr(t, "cost_return")
    assert "costs" not in stack_transitions(data.all_trajectories)
    assert not any("cost" in f.name for f in dataclasses.fields(data))
    # the hidden truth lines up with the unlabelled trajectories
    by_return = {e.reward_return: e.cost_return for e in episodes}
    assert [by_return[t.reward_return] for t in data.unlabelled] == list(truth.unlabelled_cost_returns)
    assert truth.is_safe[:5].all() and len(truth.is_safe) == 25


def test_split_is_seeded(episodes):
    cfg = SplitConfig(n_safe=5, n_unlabelled=20, seed=1)
    a, _ = make_cost_label_free_split(episodes, TASK, cfg)
    b, _ = make_cost_label_free_split(episodes, TASK, cfg)
    c, _ = make_cost_label_free_split(episodes, TASK, dataclasses.replace(cfg, seed=2))
    returns = lambda d: [t.reward_return for t in d.unlabelled]  # noqa: E731
    assert returns(a) == returns(b) and returns(a) != returns(c)
    r, _ = make_cost_label_free_split(episodes, TASK, dataclasses.replace(cfg, demo_selection="random"))
    assert len(r.safe_demos) == 5


def test_split_errors(episodes):
    with pytest.raises(SplitError, match=r"only 20 of 40 trajectories are safe .* 21 safe demonstrations"):
        make_cost_label_free_split(episodes, TASK, SplitConfig(n_safe=21, n_unlabelled=5))
    with pytest.raises(SplitError, match="35 trajectories remain"):
        make_cost_label_free_split(episodes, TASK, SplitConfig(n_safe=5, n_unlabelled=36))
    # Table 3 defaults: 15 + 500 for a Bullet task, far more than 40 episodes
    with pytest.raises(SplitError, match="500 unlabelled"):
        make_cost_label_free_split(episodes, TASK)
