"""MetaDrive data the DSRL way: a few short episodes of the rule-based driver, written, loaded, split."""

import json

import numpy as np
import pytest

from dspo_ray.data import SplitConfig, load_task_data, load_trajectories
from dspo_ray.data.collect import summarize_returns
from dspo_ray.data.metadrive_driver import DriverConfig, collect_metadrive, draw_style, drive_chunk
from dspo_ray.tasks import get_task


def test_styles_vary_per_episode_and_only_metadrive_is_driven():
    cfg = DriverConfig(task="hardsparse")
    styles = [draw_style(cfg, np.random.default_rng([k, 1])) for k in range(50)]
    speeds = np.array([s.target_speed for s in styles])
    assert cfg.speed_range[0] <= speeds.min() and speeds.max() <= cfg.speed_range[1]
    assert len(set(speeds)) == 50 and len({s.lane_change_freq for s in styles}) > 10
    assert (speeds <= 10).any() and (speeds >= 20).any()  # careful and fast drivers both
    with pytest.raises(ValueError, match="MetaDrive tasks, not 'CarCircle'"):
        DriverConfig(task="CarCircle").resolved()


def test_short_idm_collection_loads_and_splits(tmp_path):
    """Five short episodes (fast drivers: they arrive, crash or leave the road early)."""
    spec = get_task("hardsparse")
    cfg = DriverConfig(task="hardsparse", episodes=5, keep=4, seed=3, speed_range=(25.0, 40.0),
                       max_cost=1e6)
    logs = []
    result = collect_metadrive(cfg, tmp_path, log=logs.append)
    assert result.path.name == "SafeMetaDrive-hardsparse-v0-85-4.hdf5"  # DSRL's way of naming
    assert result.recorded == 5 and result.kept == 4
    trajs = load_trajectories(result.path, spec)
    assert len(trajs) == 4
    for t in trajs:
        assert t.observations.shape == (len(t), spec.obs_dim) and t.actions.shape == (len(t), 2)
        assert t.terminals[-1] or t.timeouts[-1]
        assert not (t.terminals[:-1] | t.timeouts[:-1]).any()
        assert np.abs(t.actions).max() <= 1.0  # the executed (clipped) actions
        np.testing.assert_array_equal(t.next_observations[:-1], t.observations[1:])
    sidecar = json.loads(result.path.with_suffix(".json").read_text())
    assert sidecar["config"]["driver"] == "idm" and sidecar["stats"]["kept"] == summarize_returns(
        trajs, spec.cost_limit)
    assert result.path.with_suffix(".png").is_file()
    chunk = json.loads((tmp_path / "runs" / "hardsparse" / "idm-seed3" / "chunk-00000.json").read_text())
    styles = chunk["styles"]
    assert len(styles) == 5 and len({s["target_speed"] for s in styles}) == 5
    # the split: top-return "safe" demos and unlabelled ones (a loose cost limit: fast drivers)
    data, truth = load_task_data("hardsparse", result.path,
                                 SplitConfig(n_safe=1, n_unlabelled=3, cost_limit=1e6))
    assert len(data.safe_demos) == 1 and len(data.unlabelled) == 3
    assert not hasattr(data.unlabelled[0], "costs")
    # a rerun with the same config reuses the recorded episodes and writes the same file
    before = result.path.read_bytes()
    again = collect_metadrive(cfg, tmp_path, log=logs.append)
    assert any("reusing 1 recorded chunk(s)" in m for m in logs)
    assert again.path.read_bytes() == before


def test_cli_drives_only_metadrive(capsys):
    from dspo_ray.commands.collect import main

    with pytest.raises(SystemExit) as e:
        main(["--task", "CarCircle", "--driver", "idm"])
    assert e.value.code == 2 and "--driver idm drives MetaDrive only, not CarCircle" in capsys.readouterr().err


def test_a_chunk_is_the_same_whatever_its_process_drove_before():
    """Each chunk is driven in a fresh environment: MetaDrive's traffic follows everything its
    environment drove, so with one environment per process a chunk depended on which chunks the
    process (a Ray worker, chosen by the scheduler) had driven earlier."""
    cfg = DriverConfig(task="hardsparse", episodes=2, seed=5, speed_range=(30.0, 40.0)).resolved()
    alone, _ = drive_chunk(cfg, 1, 1, log=lambda *_: None)
    drive_chunk(cfg, 0, 1, log=lambda *_: None)
    after_another, _ = drive_chunk(cfg, 1, 1, log=lambda *_: None)
    np.testing.assert_array_equal(alone[0].observations, after_another[0].observations)
    np.testing.assert_array_equal(alone[0].rewards, after_another[0].rewards)
