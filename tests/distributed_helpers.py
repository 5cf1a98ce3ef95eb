"""Small real workloads for the Ray tests: a linear regression trained through the TrainContext
API (DDP on Ray Train workers), and a sweep method built on it.

Not DSPO: these let the runner, sweep, retry and resume machinery be tested in seconds. Imported
by Ray workers, so they live in a module (not in the test file).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dspo_ray.training import unwrap

TRUE_W = np.array([1.5, -2.0, 0.5], np.float32)


def regression_data(n: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype(np.float32)
    y = x @ TRUE_W + 0.3 + 0.01 * rng.normal(size=n).astype(np.float32)
    return x, y


def train_linear(ctx, x, y, steps=60, lr=0.1, checkpoint_every=10, step_sleep=0.0,
                 marker_dir=None, fail_once_at=None) -> dict[str, Any]:
    """Full-batch SGD on this rank's shard of (x, y); returns the weights and the history of ranks.

    ``marker_dir``: each rank writes ``rank<r>.node`` (its node id) and ``start<k>`` files count
    how often the stage started (to observe placement and restarts from the test).
    ``fail_once_at``: rank 0 raises after that step's checkpoint, once (``marker_dir/failed``).
    """
    torch.manual_seed(0)
    model = ctx.wrap_model(nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    start = 0
    state = ctx.load_checkpoint()
    if state is not None:
        unwrap(model).load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start = state["step"]
    if marker_dir is not None:
        import ray

        marker_dir = Path(marker_dir)
        marker_dir.mkdir(parents=True, exist_ok=True)
        (marker_dir / f"rank{ctx.rank}.node").write_text(ray.get_runtime_context().get_node_id())
        (marker_dir / f"start-rank{ctx.rank}-step{start}-{time.time_ns()}").touch()
    xs = torch.as_tensor(x[ctx.rank::ctx.world_size], device=ctx.device)
    ys = torch.as_tensor(y[ctx.rank::ctx.world_size], device=ctx.device)
    loss = torch.tensor(0.0)
    for step in range(start, steps):
        opt.zero_grad()
        loss = ((model(xs).squeeze(-1) - ys) ** 2).mean()
        loss.backward()
        opt.step()
        if step_sleep:
            time.sleep(step_sleep)
        if (step + 1) % checkpoint_every == 0:
            ctx.report({"losses/mse": loss.item(), "train/step": step + 1},
                       checkpoint={"model": unwrap(model).state_dict(), "opt": opt.state_dict(),
                                   "step": step + 1})
        if (fail_once_at == step + 1 and ctx.rank == 0
                and not (Path(marker_dir) / "failed").exists()):
            (Path(marker_dir) / "failed").touch()
            raise RuntimeError("a worker lost mid-stage (test)")
    weights = unwrap(model).weight.detach().cpu().numpy().ravel()
    return {"weight": weights, "bias": float(unwrap(model).bias.item()), "mse": float(loss.item()),
            "world_size": ctx.world_size, "resumed_from": start, "pid": os.getpid()}


def linear_method(task: str, seed: int, config: dict, workdir: Path, runner, report,
                  eval_episodes: int | None = None) -> dict[str, float]:
    """A sweep method: fit the regression with the sweep's ``lr`` and report a made-up but
    deterministic (reward, cost) pair: reward rises as the fit improves; cost grows with lr, so
    lr > 0.3 is 'unsafe'. Optional ``fail_first``: raise once per trial (retry tests);
    ``sleep_s``, ``step_sleep``: slow it down (resume, node-loss tests); ``marker_dir``: see
    ``train_linear``."""
    workdir = Path(workdir)
    x, y = regression_data(seed=seed)
    lr = float(config.get("lr", 0.1))
    fail_marker = workdir / "failed-once"
    if config.get("fail_first") and not fail_marker.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        fail_marker.touch()
        raise RuntimeError("deliberate first-attempt failure")
    if config.get("sleep_s"):
        time.sleep(float(config["sleep_s"]))
    out = runner.run("fit", train_linear, workdir, x=x, y=y, steps=int(config.get("steps", 30)),
                     lr=lr, checkpoint_every=10, step_sleep=float(config.get("step_sleep", 0.0)),
                     marker_dir=config.get("marker_dir"))
    reward = float(1.0 / (1.0 + out["mse"]))
    cost = lr / 0.3
    metrics = {"eval/normalized_reward": reward, "eval/normalized_cost": cost,
               "eval/safe": cost <= 1.0, "fit/world_size": out["world_size"],
               "fit/resumed_from": out["resumed_from"], "fit/mse": out["mse"], "stage": 1}
    report(metrics)
    return metrics


def ray_home() -> str:
    """One HOME for every Ray started in this (pytest) process: Ray 2.60 keeps the token of
    `$HOME/.ray/auth_token` cached in the process, so a second cluster under another HOME would
    write a new token that this process never reads (its GCS then never comes up)."""
    import atexit
    import shutil
    import tempfile

    path = Path(tempfile.gettempdir()) / f"dspo-ray-home-{os.getpid()}"
    if not path.exists():
        path.mkdir()
        atexit.register(shutil.rmtree, path, True)
    return str(path)


def two_linear_stages(runner, workdir, x, y, marker_dir) -> dict[str, Any]:
    """A ``RayTrainRunner.run_group`` function: two regression stages on one worker group, the
    first's result kept in ``workdir`` (skipped when there, as run_dspo skips by artefacts); the
    second fails once after its step-30 checkpoint."""
    import pickle

    first = Path(workdir) / "first.pkl"
    if not first.exists():
        first.write_bytes(pickle.dumps(runner.run("first", train_linear, workdir, x=x, y=y,
                                                  steps=40, lr=0.1)))
    second = runner.run("second", train_linear, workdir, x=x, y=y, steps=60, lr=0.1,
                        marker_dir=marker_dir, fail_once_at=30)
    runner.report({"stage": "done", "second_mse": second["mse"]})
    return {"first": pickle.loads(first.read_bytes()), "second": second}
