"""Issue 16.9: the stage loop the trainers share (dspo_ray.training.run_steps): logging cadence,
checkpoints, and a run interrupted after a checkpoint that resumes to exactly the weights of an
uninterrupted one, for the BC and diffusion stages (tiny models, CPU, seconds)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dspo_ray.dspo.bc import train_bc
from dspo_ray.dspo.config import BCConfig, DiffusionConfig
from dspo_ray.dspo.diffusion import train_diffusion
from dspo_ray.dspo.windows import RaggedTrajectories
from dspo_ray.training import LocalContext, run_steps

torch.set_num_threads(1)


class Interrupted(Exception):
    pass


def run(train_fn, kwargs, checkpoint_path, stop_at: int | None = None):
    """``train_fn`` in a LocalContext; with ``stop_at``, interrupted once that step is reported."""
    reports = []

    def report(metrics):
        reports.append(dict(metrics))
        if metrics["train/step"] == stop_at:
            raise Interrupted

    ctx = LocalContext(checkpoint_path=checkpoint_path, device=torch.device("cpu"), log=[report])
    try:
        return train_fn(ctx, **kwargs), reports
    except Interrupted:
        return None, reports


def test_reports_means_at_the_cadence_and_checkpoints_at_its_own(tmp_path):
    class Counter:
        def __init__(self):
            self.value = 0

        def state_dict(self):
            return {"value": self.value}

        def load_state_dict(self, state):
            self.value = state["value"]

    counter, rng = Counter(), np.random.default_rng(0)
    saved = []

    def step(done):
        counter.value += 1
        return {"losses/x": float(done)}

    class Recording(LocalContext):
        def report(self, metrics, checkpoint=None):
            saved.append(checkpoint is not None)
            super().report(metrics, checkpoint)

    ctx = Recording(checkpoint_path=tmp_path / "ckpt.pt")
    run_steps(ctx, "test", 7, step, {"counter": counter}, rng, log_every=2, checkpoint_every=4)
    assert [m["train/step"] for m in ctx.history] == [2, 4, 6, 7]
    assert [m["losses/x"] for m in ctx.history] == [1.5, 3.5, 5.5, 7.0]  # means since last report
    assert saved == [False, True, False, True]  # every 4 steps and at the end
    # a finished stage resumes to nothing left to do
    again = Recording(checkpoint_path=tmp_path / "ckpt.pt")
    run_steps(again, "test", 7, step, {"counter": counter}, rng, log_every=2, checkpoint_every=4)
    assert again.history == [] and counter.value == 7


def tiny_stages():
    rng = np.random.default_rng(0)
    bc = dict(observations=rng.normal(size=(200, 5)).astype(np.float32),
              actions=rng.uniform(-1, 1, (200, 2)).astype(np.float32),
              config=BCConfig(steps=40, batch_size=16, hidden=(16,), log_every=5,
                              checkpoint_every=10),
              action_low=-np.ones(2), action_high=np.ones(2), seed=3)
    trajectories = RaggedTrajectories(
        observations=rng.normal(size=(120, 5)).astype(np.float32),
        actions=rng.uniform(-1, 1, (120, 2)).astype(np.float32), lengths=np.array([30, 40, 50]),
        returns=np.array([1.0, 2.0, 3.0]), is_demo=np.array([True, False, False]))
    diffusion = dict(trajectories=trajectories, signals=np.array([0.9, 0.2, 0.5]),
                     config=DiffusionConfig(steps=30, batch_size=8, horizon=8, n_diffusion_steps=5,
                                            dim=8, dim_mults=(1, 2), attention=False, log_every=5,
                                            checkpoint_every=10, ema_start=10, ema_every=5),
                     seed=1)
    return {"bc": (train_bc, bc, 25), "diffusion": (train_diffusion, diffusion, 15)}


@pytest.mark.parametrize("stage", ["bc", "diffusion"])
def test_an_interrupted_stage_resumes_to_the_uninterrupted_weights(stage, tmp_path):
    train_fn, kwargs, stop_at = tiny_stages()[stage]
    full, full_reports = run(train_fn, kwargs, tmp_path / "full.pt")
    _, first = run(train_fn, kwargs, tmp_path / "resumed.pt", stop_at=stop_at)
    resumed, rest = run(train_fn, kwargs, tmp_path / "resumed.pt")
    # interrupted at a report without a checkpoint: the steps since the last one run again
    assert first[-1]["train/step"] == stop_at and rest[0]["train/step"] == stop_at
    assert first[:-1] + rest == full_reports
    for key in ("state_dict", "ema_state_dict"):
        for name, value in full.get(key, {}).items():
            assert torch.equal(value, resumed[key][name]), (key, name)
