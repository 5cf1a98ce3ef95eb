"""Figure 4's protocol: backbones as supervised safe/unsafe classifiers on held-out trajectories."""

import numpy as np
import pytest
from dataclasses import replace

from dspo_ray.data import CostedTrajectory
from dspo_ray.dspo.architecture_ablation import run_architecture_ablation, split_labelled
from dspo_ray.dspo.config import profile_config
from dspo_ray.tasks import get_task

TINY = replace(profile_config("quick").discriminator, window=10, batch_size=16, steps=150,
               warmup_steps=10, learning_rate=3e-3, embed_dim=32, attention_dim=32,
               mlp_hidden=(64, 64), dropout=0.0)


def _trajectory(rng, safe: bool, length: int = 20, obs_dim: int = 8) -> CostedTrajectory:
    # safety is written in the states: feature 0 drifts up in unsafe trajectories only
    obs = rng.normal(size=(length, obs_dim)).astype(np.float32)
    obs[:, 0] += 0.0 if safe else np.linspace(0, 3, length)
    act = rng.uniform(-1, 1, (length, 2)).astype(np.float32)
    costs = np.zeros(length, np.float32) if safe else np.ones(length, np.float32)
    flags = np.zeros(length, bool)
    flags[-1] = True
    return CostedTrajectory(observations=obs, actions=act, rewards=rng.normal(size=length).astype(np.float32),
                            next_observations=obs, terminals=np.zeros(length, bool), timeouts=flags,
                            costs=costs)


def test_split_is_stratified_disjoint_and_capped():
    is_safe = np.array([True] * 30 + [False] * 70)
    train, test = split_labelled(is_safe, seed=0, max_train=40)
    assert not set(train) & set(test)
    assert len(test) == 30 and is_safe[test].sum() == 9
    assert len(train) == 40 and is_safe[train].sum() == 12


@pytest.mark.parametrize("backbone", ["safety_transformer", "mlp"])
def test_both_backbones_learn_safety_that_is_visible_in_the_states(backbone):
    rng = np.random.default_rng(0)
    trajectories = [_trajectory(rng, safe=i % 3 == 0) for i in range(90)]
    r = run_architecture_ablation(trajectories, get_task("CarCircle"), backbone, TINY, seed=0)
    assert r.n_test == 27 and r.n_test_safe == 9
    assert r.auroc > 0.9 and r.balanced_accuracy > 0.8


def test_figure4_command_writes_table_csv_and_plot(carcircle_dataset, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "experiments/figure4.py", "--task", "CarCircle",
                          "--seed", "0", "--steps", "5", "--dataset", str(carcircle_dataset),
                          "--out", str(tmp_path / "f4")], cwd=repo, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    note = (tmp_path / "f4" / "figure4.md").read_text()
    assert "| CarCircle | safety_transformer |" in note and "| CarCircle | mlp |" in note
    assert (tmp_path / "f4" / "figure4.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, "experiments/figure4.py", "--task", "NoSuchTask"],
                         cwd=repo, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "NoSuchTask" in bad.stderr and "Traceback" not in bad.stderr
