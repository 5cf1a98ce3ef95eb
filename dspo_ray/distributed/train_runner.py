"""Run a training stage on Ray Train: ``RayTrainRunner`` is a ``dspo_ray.training.StageRunner``.

A stage is ``train_fn(ctx, **kwargs)`` (see dspo_ray/training.py). Here it runs inside a
``ray.train.torch.TorchTrainer`` on ``num_workers`` data-parallel workers (gloo on CPU, NCCL on
GPU); ``ctx`` is a :class:`RayTrainContext`:

* ``wrap_model`` -> ``ray.train.torch.prepare_model`` (device + DDP when world_size > 1),
* ``report(metrics, checkpoint)`` -> ``ray.train.report`` on every rank, rank 0 attaching the
  checkpoint dict (saved as ``state.pt`` in a Ray Train ``Checkpoint`` on the run's storage),
* ``load_checkpoint()`` -> ``ray.train.get_checkpoint()``: after a worker or node loss Ray Train
  restarts the worker group (``max_failures``) and the stage resumes from its last checkpoint; a
  whole new ``run()`` with the same run name (a retried trial) resumes the same way.

Rank 0's return value comes back through storage, not through the driver's memory: when
``train_fn`` returns, rank 0 reports one last checkpoint holding ``return.pt``, and ``run`` loads
it from the ``Result``. That works for a local folder and for ``s3://``/``gs://`` storage alike,
wherever the workers ran.

Inside a Tune trial (``report_to_tune=True``) rank 0's training reports also become rows of the
trial's own results, live, through Ray Train's ``TuneReportCallback`` (:class:`TrainingRowsToTune`):
each with the stage's name (``stage``) and the ``row_tags`` the trial sets (its ``progress``).
Those rows carry no ``objective``, so a scheduler never acts on them.

``run_group`` runs several stages on ONE worker group (one ``TorchTrainer``, started once):
``fn(runner, workdir, **kwargs)`` runs on rank 0 with a :class:`GroupStageRunner`, whose ``run`` hands each
stage to every rank of the group (the other ranks follow rank 0's commands), so a DSPO trial pays
Ray Train's start-up once instead of once per stage. Each stage's checkpoints are its own
(``<stage>.state.pt``): after a worker loss the group restarts, ``fn`` runs again, and the stage
that was interrupted resumes from its checkpoint (``fn`` skips the stages it had finished, as
``run_dspo`` does by their artefacts).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import ray
import ray.train
import ray.train.torch
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from dspo_ray.training import LocalRunner, save_atomic

STATE_FILE = "state.pt"
"""The stage's own checkpoint dict, as reported by ``ctx.report(..., checkpoint=...)``."""
RETURN_FILE = "return.pt"
"""Rank 0's return value, in the stage's final checkpoint."""
DONE_METRIC = "stage_done"


def _load(directory: str | Path, name: str) -> Any:
    return torch.load(Path(directory) / name, map_location="cpu", weights_only=False)


@dataclass
class RayTrainContext:
    """A ``dspo_ray.training.TrainContext`` for code running in a Ray Train worker.

    ``state_file``: the name of the stage's checkpoint in a Ray Train checkpoint (a worker group
    that runs several stages gives each its own); ``tags``: added to every report (the stage's
    name and the trial's ``progress``, for the rows that reach Tune)."""

    rank: int
    world_size: int
    device: torch.device
    state_file: str = STATE_FILE
    tags: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def current(cls, stage: str | None = None,
                tags: dict[str, Any] | None = None) -> "RayTrainContext":
        context = ray.train.get_context()
        return cls(rank=context.get_world_rank(), world_size=context.get_world_size(),
                   device=ray.train.torch.get_device(),
                   state_file=f"{stage}.{STATE_FILE}" if stage else STATE_FILE,
                   tags=dict(tags or {}))

    def wrap_model(self, model: nn.Module) -> nn.Module:
        # prepare_model moves to the worker's device and wraps in DDP only when world_size > 1
        return ray.train.torch.prepare_model(model)

    def report(self, metrics: dict[str, float], checkpoint: dict[str, Any] | None = None) -> None:
        metrics = {**{k: _plain(v) for k, v in metrics.items()}, **self.tags}
        if checkpoint is None or self.rank != 0:
            # a barrier: every rank reports, only rank 0's checkpoint is kept
            ray.train.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="dspo-ckpt-") as tmp:
            save_atomic(checkpoint, Path(tmp) / self.state_file)
            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(tmp))

    def load_checkpoint(self) -> dict[str, Any] | None:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            # a group's newest checkpoint may be an earlier stage's: not this stage's to resume
            if (Path(directory) / self.state_file).exists():
                return _load(directory, self.state_file)
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy scalars
    return value


def _worker_loop(config: dict[str, Any]) -> None:
    """What every Ray Train worker runs: the stage (``train_fn``), or rank 0 runs ``group_fn``
    with a :class:`GroupStageRunner` while the other ranks follow it; then rank 0 hands its
    return value back."""
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    ctx = RayTrainContext.current(tags=config["tags"])
    previous = ray.train.get_checkpoint()
    if previous is not None:
        with previous.as_directory() as directory:
            if (Path(directory) / RETURN_FILE).exists():
                # the run had finished before this one started: report its result again
                _report_return(ctx, _load(directory, RETURN_FILE))
                return
    if "group_fn" not in config:
        value = config["train_fn"](ctx, **config["kwargs"])
    elif ctx.rank == 0:
        runner = GroupStageRunner(ctx)
        value = config["group_fn"](runner, config["workdir"], **config["kwargs"])
        runner._send(("done",))
    else:
        value = _follow(ctx)
    _report_return(ctx, value)


class GroupStageRunner:
    """The ``StageRunner`` of rank 0 in a worker group that runs several stages
    (``RayTrainRunner.run_group``): each ``run`` runs the stage on every rank of the group.

    ``row_tags``: added to the stage's reports (the trial's ``progress``); ``report``: a row for
    the trial's results from rank 0 (every rank reports with it: Ray Train's reports are
    collective)."""

    def __init__(self, ctx: RayTrainContext):
        self.ctx = ctx
        self.row_tags: dict[str, Any] = {}

    def run(self, stage: str, train_fn: Callable[..., Any], workdir: Path, **kwargs: Any) -> Any:
        tags = {**self.ctx.tags, "stage": stage, **self.row_tags}
        self._send(("stage", stage, tags, train_fn, kwargs))
        return train_fn(RayTrainContext.current(stage, tags), **kwargs)

    def report(self, metrics: dict[str, Any]) -> None:
        self._send(("report",))
        ray.train.report({k: _plain(v) for k, v in metrics.items()})

    def _send(self, command: tuple) -> None:
        if self.ctx.world_size > 1:
            torch.distributed.broadcast_object_list([command], src=0)


def _follow(ctx: RayTrainContext) -> None:
    """Ranks other than 0 in a ``run_group`` worker group: run what rank 0 runs, until done."""
    while True:
        box: list[Any] = [None]
        torch.distributed.broadcast_object_list(box, src=0)
        command = box[0]
        if command[0] == "stage":
            _, stage, tags, train_fn, kwargs = command
            train_fn(RayTrainContext.current(stage, tags), **kwargs)
        elif command[0] == "report":
            ray.train.report({})
        else:
            return None


def _report_return(ctx: RayTrainContext, value: Any) -> None:
    if ctx.rank != 0:
        ray.train.report({DONE_METRIC: 1})
        return
    with tempfile.TemporaryDirectory(prefix="dspo-return-") as tmp:
        # the value goes to CPU first so that the driver can load it without a GPU
        save_atomic(_to_cpu(value), Path(tmp) / RETURN_FILE)
        ray.train.report({DONE_METRIC: 1}, checkpoint=Checkpoint.from_directory(tmp))


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, nn.Module):
        return value.cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_to_cpu(v) for v in value)
    return value


class TrainingRowsToTune(TuneReportCallback):
    """Sends rank 0's reports (tagged by the workers) to the Tune trial running the worker group;
    the closing report (the return value) and the checkpoints stay Ray Train's."""

    def __init__(self):
        super().__init__()  # in the trial's process: takes hold of the trial's report queue

    def after_report(self, run_context, metrics, checkpoint) -> None:
        if not metrics or DONE_METRIC in metrics[0]:
            return
        super().after_report(run_context, [metrics[0]], None)


class StageFailedError(RuntimeError):
    """A stage's Ray Train run ended with an error (after its own retries)."""


class RayTrainRunner:
    """A ``StageRunner`` that runs each stage on a Ray Train worker group (DDP).

    ``run_name`` + ``storage_path`` name the stage's Ray Train run (``<run_name>-<stage>``): call
    ``run`` again with the same names and the stage resumes from its last checkpoint. Default
    storage: ``<workdir>/ray_train`` (fine on one machine or a shared filesystem; give the sweep's
    storage URI on a cluster without one).

    ``report_to_tune``: called inside a Tune trial, every training report of rank 0 is also a
    row of the trial's results (``{**metrics, "stage": stage, **row_tags}``), on Ray Train
    workers and in this process alike (``num_workers=0``).
    """

    def __init__(self, num_workers: int = 2, use_gpu: bool = False, cpus_per_worker: float = 1.0,
                 storage_path: str | None = None, run_name: str | None = None,
                 max_failures: int = 1, log: list[Callable[[dict], None]] | None = None,
                 report_to_tune: bool = False):
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.num_workers = num_workers
        self.use_gpu = use_gpu
        self.cpus_per_worker = cpus_per_worker
        self.storage_path = storage_path
        self.run_name = run_name
        self.max_failures = max_failures
        self.log = log or []
        self.report_to_tune = report_to_tune
        self.row_tags: dict[str, Any] = {}
        """Added to every training row sent to Tune (the trial keeps its ``progress`` here)."""

    def run(self, stage: str, train_fn: Callable[..., Any], workdir: Path, **kwargs: Any) -> Any:
        workdir = Path(workdir)
        tags = {"stage": stage, **self.row_tags}
        if self.num_workers == 0:
            log = list(self.log)
            if self.report_to_tune:
                from ray import tune

                log.append(lambda metrics: tune.report({**metrics, **tags}))
            return LocalRunner(log).run(stage, train_fn, workdir, **kwargs)
        return self._fit(stage, workdir, {"train_fn": train_fn, "kwargs": kwargs, "tags": tags})

    def run_group(self, name: str, fn: Callable[..., Any], workdir: Path, **kwargs: Any) -> Any:
        """``fn(runner, workdir, **kwargs)`` on rank 0 of one worker group (Ray Train run
        ``<run_name>-<name>``), where ``runner`` (a :class:`GroupStageRunner`) runs each stage on
        every worker of the group; returns ``fn``'s return value. Needs ``num_workers >= 1``.
        ``fn`` runs again from the start after a worker loss: it must skip what it finished."""
        if self.num_workers < 1:
            raise ValueError("run_group needs num_workers >= 1 (with 0, call fn with this runner)")
        return self._fit(name, Path(workdir), {"group_fn": fn, "workdir": str(workdir),
                                               "kwargs": kwargs, "tags": dict(self.row_tags)})

    def _fit(self, stage: str, workdir: Path, loop_config: dict[str, Any]) -> Any:
        workdir.mkdir(parents=True, exist_ok=True)
        name = f"{self.run_name}-{stage}" if self.run_name else stage
        storage = self.storage_path or str((workdir / "ray_train").resolve())
        resources = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            resources["GPU"] = 1
        trainer = TorchTrainer(
            _worker_loop,
            train_loop_config=loop_config,
            scaling_config=ScalingConfig(num_workers=self.num_workers, use_gpu=self.use_gpu,
                                         resources_per_worker=resources),
            torch_config=TorchConfig(backend="nccl" if self.use_gpu else "gloo"),
            run_config=RunConfig(
                name=name, storage_path=storage,
                failure_config=FailureConfig(max_failures=self.max_failures),
                # the last two: the newest may be half-written when a node dies mid-upload
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                callbacks=[TrainingRowsToTune()] if self.report_to_tune else None,
            ),
        )
        try:
            result = trainer.fit()
        except Exception as e:  # TrainingFailedError and friends: say which stage
            raise StageFailedError(f"stage {stage!r} failed on Ray Train "
                                   f"(run {name!r} under {storage}): {e}") from e
        if result.error is not None:
            raise StageFailedError(f"stage {stage!r} failed: {result.error}") from result.error
        if result.checkpoint is None:
            raise StageFailedError(f"stage {stage!r} finished without its final checkpoint")
        with result.checkpoint.as_directory() as directory:
            value = _load(directory, RETURN_FILE)
        return value
