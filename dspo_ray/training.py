"""The seam between a stage's training loop and where it runs.

A stage (discriminator, diffusion, ...) is written once as ``train_fn(ctx, **kwargs)``: a plain
loop over plain tensors that asks ``ctx`` for its device, its shard of the data, to wrap its
model for data-parallel training, to report numbers and to save/restore its checkpoint.
:class:`LocalContext` runs it in this process; ``dspo_ray.distributed`` supplies a context backed
by Ray Train (DDP workers), and a runner that starts those workers. Nothing here imports ray.

:func:`run_steps` is the loop the stage trainers share (resume from the checkpoint, logging
cadence, checkpoint saving); a trainer supplies its step. (The discriminator's trainer still has its
own copy of that loop: its batch sampling is being reworked, and it moves onto run_steps after.)
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch
from dspo_ray.io import atomic_path
from torch import nn
from tqdm.auto import tqdm


class TrainContext(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def wrap_model(self, model: nn.Module) -> nn.Module:
        """Move to the device (and wrap for data-parallel training when world_size > 1)."""

    def report(self, metrics: dict[str, float], checkpoint: dict[str, Any] | None = None) -> None:
        """Log numbers (names like ``losses/discriminator``, and ``train/step``: the step within
        the stage, which makes the report a training row of a sweep's learning curves); with a
        checkpoint, save it too.

        Every rank calls this; only rank 0's checkpoint is kept.
        """

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The last checkpoint reported by an earlier, interrupted run of this stage, if any."""


def resolve_device(name: str = "auto") -> torch.device:
    """The device a config names; ``auto``: CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary name, then rename: a crash never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)


@dataclass
class LocalContext:
    """One process, no Ray: checkpoints go to ``checkpoint_path``; metrics to ``log`` callbacks."""

    checkpoint_path: Path | None = None
    device: torch.device = field(default_factory=resolve_device)
    log: list[Callable[[dict[str, float]], None]] = field(default_factory=list)
    rank: int = 0
    world_size: int = 1
    history: list[dict[str, float]] = field(default_factory=list)

    def wrap_model(self, model: nn.Module) -> nn.Module:
        return model.to(self.device)

    def report(self, metrics: dict[str, float], checkpoint: dict[str, Any] | None = None) -> None:
        self.history.append(dict(metrics))
        for fn in self.log:
            fn(metrics)
        if checkpoint is not None and self.checkpoint_path is not None:
            save_atomic(checkpoint, self.checkpoint_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        if self.checkpoint_path is not None and Path(self.checkpoint_path).exists():
            try:
                return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
            except Exception as e:  # truncated or corrupted: start the stage over, say so
                import sys

                print(f"warning: checkpoint {self.checkpoint_path} is unreadable "
                      f"({type(e).__name__}); the stage starts from the beginning",
                      file=sys.stderr, flush=True)
                Path(self.checkpoint_path).unlink(missing_ok=True)
        return None


class StageRunner(Protocol):
    def run(self, stage: str, train_fn: Callable[..., Any], workdir: Path, **kwargs: Any) -> Any:
        """Run ``train_fn(ctx, **kwargs)`` and return rank 0's return value.

        ``workdir`` is the stage's own folder (for its in-progress checkpoint). kwargs must pickle.
        """


class LocalRunner:
    """Runs a stage in this process."""

    def __init__(self, log: list[Callable[[dict[str, float]], None]] | None = None):
        self.log = log or []

    def run(self, stage: str, train_fn: Callable[..., Any], workdir: Path, **kwargs: Any) -> Any:
        ctx = LocalContext(checkpoint_path=Path(workdir) / f"{stage}.in-progress.pt", log=self.log)
        return train_fn(ctx, **kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (for saving weights)."""
    return getattr(model, "module", model)


def run_steps(ctx: TrainContext, name: str, total: int, step: Callable[[int], dict[str, float]],
              state: dict[str, Any], rng: np.random.Generator, log_every: int,
              checkpoint_every: int, torch_rng: bool = True) -> None:
    """Run a stage's training steps from where its last checkpoint left them up to ``total``.

    ``step(done)`` does one step (``done``: its 1-based number) and returns the numbers to log;
    every ``log_every`` steps and at the last one, their means since the last report are reported
    with ``train/step``, and every ``checkpoint_every`` steps and at the last one with a
    checkpoint. ``state``: what a checkpoint holds besides the step and the random streams, name ->
    object with ``state_dict``/``load_state_dict`` (unwrapped models, optimizers, schedulers).
    ``rng``: the numpy generator the step draws from; torch's global generator is checkpointed too
    unless ``torch_rng`` is False (a step that draws nothing from torch). A resumed run continues
    exactly as the uninterrupted one would have.
    """
    start = 0
    checkpoint = ctx.load_checkpoint()
    if checkpoint is not None:
        for key, obj in state.items():
            obj.load_state_dict(checkpoint[key])
        start = checkpoint["step"]
        rng.bit_generator.state = checkpoint["rng"]
        if torch_rng:
            torch.set_rng_state(checkpoint["torch_rng"])
    logged: dict[str, list[float]] = {}
    for index in tqdm(range(start, total), desc=name, disable=None, initial=start, total=total):
        done = index + 1
        for key, value in step(done).items():
            logged.setdefault(key, []).append(value)
        if done % log_every == 0 or done == total:
            metrics = {key: float(np.mean(values)) for key, values in logged.items()}
            metrics["train/step"] = done
            logged = {}
            saved = None
            if done % checkpoint_every == 0 or done == total:
                saved = {key: obj.state_dict() for key, obj in state.items()}
                saved.update(step=done, rng=rng.bit_generator.state)
                if torch_rng:
                    saved["torch_rng"] = torch.get_rng_state()
            ctx.report(metrics, checkpoint=saved)
