"""Fixtures shared by several test files."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dspo_ray.data import dsrl_filename, write_dsrl
from dspo_ray.data.rollout import record_episode
from dspo_ray.envs import make_env


@pytest.fixture(scope="session")
def carcircle_dataset(tmp_path_factory):
    """50 real CarCircle episodes from constant-plus-noise policies with a random bias each
    (some stay in the safe region, some leave it): a DSRL file in a folder."""
    folder = tmp_path_factory.mktemp("carcircle")
    env = make_env("CarCircle", seed=0)
    rng = np.random.default_rng(0)
    episodes = []
    for i in range(50):
        bias, noise = rng.uniform(-1, 1, 2), rng.uniform(0, 0.5)
        act_rng = np.random.default_rng(1000 + i)
        act = lambda obs: np.clip(bias + noise * act_rng.normal(size=2), -1, 1)  # noqa: E731
        episodes.append(record_episode(env, act, seed=i, max_steps=300))
    env.close()
    assert sum(e.cost_return <= 10 for e in episodes) >= 5, "the fixture needs 5 safe episodes"
    write_dsrl(folder / dsrl_filename("CarCircle", len(episodes)), episodes)
    return folder


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of ``benchmarks/`` (a folder of scripts, not a package) by its name:
    ``load_benchmark("budget_curves")``. The folder goes on ``sys.path`` first, as it is for a
    script run from it, so that a script importing a sibling (``from window_truth import ...``)
    loads."""
    folder = Path(__file__).resolve().parents[1] / "benchmarks"
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

    def load(name: str):
        path = folder / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def tune_trial():
    """Write one finished trial as Tune writes it (``params.json`` and a ``result.json`` line)
    under a sweep folder: ``tune_trial(root, method, k, seed, params, result, task=...)``, its
    group ``<method>/<task>/<k>`` (the k-th configuration of the cell)."""
    def write(root: Path, method: str, k: int, seed: int, params: dict, result: dict,
              task: str = "CarCircle") -> Path:
        folder = root / f"run_trial_{method}_{task}_{k}_{seed}"
        folder.mkdir(parents=True)
        (folder / "params.json").write_text(json.dumps(
            {"method": method, "task": task, "seed": seed, "group": f"{method}/{task}/{k}",
             "params": params}))
        (folder / "result.json").write_text(json.dumps(result) + "\n")
        return folder
    return write
