"""Sweeps on Ray Tune: Optuna (TPE) per (method, task) cell, every configuration on every seed.

The pieces, top to bottom:

* ``objective`` (from ``dspo_ray.analysis.results``) -- the constrained goal as one number:
  maximise normalised reward subject to normalised cost <= 1, lexicographically.
* :class:`CellGridSearcher` -- a Tune ``Searcher`` asking one seeded TPE Optuna study per
  (method, task) cell, kept in the sweep's SQLite database (``<storage>/<name>/optuna.db``, see
  ``SweepConfig.optuna_db``; ``optuna.load_study`` and optuna-dashboard read it). Each
  configuration Optuna proposes becomes one Tune trial per seed; when all its seeds are done
  Optuna is told their mean objective. Tasks and seeds are therefore a grid across the search
  space, in one Tune experiment that fills the whole cluster.
* :class:`PerCellASHA` -- ASHA early stopping, one bracket set per cell (a hard task's trials
  never compete with an easy task's).
* :func:`run_trial` -- the Tune trainable: one (method, task, seed, configuration). DSPO's
  training stages run on one Ray Train worker group per trial (:class:`RayTrainRunner`);
  ``run_dspo`` reports after each stage and those reports go to Tune (ASHA acts on them). Every method's training scalars
  (``losses/...``, ``train/step``, ...) reach Tune too, every ``log_every`` steps, as *training
  rows* (no ``objective``: ASHA and Optuna never act on them) for TensorBoard, W&B and the
  learning curves. The first report that carries the evaluation also carries the trained policy
  as a Tune checkpoint (``policy.pt``): ``ResultGrid.get_best_result().checkpoint``.
* :func:`run_sweep` -- starts or joins Ray, builds (or restores) the Tuner, runs it, and writes
  the per-task summary.

Stage cache (``SweepConfig.stage_cache``, on by default): DSPO trials look each training stage up
in ``<workdir>/stage_cache`` (``dspo_ray.dspo.stage_cache``) before training it, and add what they
train, so trials that differ only in later stages' settings train the shared stages once.

Reliability: a trial that raises is retried ``trial.max_failures`` times (each retry skips the
stages whose artefacts are in its work folder and resumes the interrupted stage from its Ray
Train checkpoint); the sweep goes on past a trial that keeps failing. ``resume=True`` continues
an interrupted experiment with ``Tuner.restore``: finished trials are kept, unfinished and errored
ones run again (resuming their stages), and the cells' Optuna studies are reopened from the
sweep's database.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

import ray
from ray import tune
from ray.tune.logger import CSVLoggerCallback
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from dspo_ray.analysis.results import (COST, REWARD, TRAINING_STEP, is_evaluated, load_results,
                                       objective)
from dspo_ray.analysis.tables import sweep_summary
from dspo_ray.config import to_dict
from dspo_ray.distributed.config import (DSPO, Distribution, SweepConfig, auto_concurrency,
                                         import_custom_method, method_config,
                                         sweep_config_from_dict)
from dspo_ray.distributed.train_runner import RayTrainRunner
from dspo_ray.dspo.config import STAGES as DSPO_STAGES
from dspo_ray.evaluation import start_evaluation_workers
from dspo_ray.metrics import LABEL_FREE_STAGE1_METRIC
from dspo_ray.policies import POLICY_FILE

METRIC = "objective"
MODE = "max"
EVALUATED_METRIC = "evaluated_objective"
"""The objective in evaluated reports only: Tune's own metric, so that
``ResultGrid.get_best_result()`` is the best evaluated trial (whose checkpoint is its policy),
never one that ASHA stopped on its intermediate score."""

# Ray Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s)
# and each ray.train.report waits for a poll: 0.2 s saves ~3 s per stage and ~1.8 s per report.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
           # on a busy machine the GCS can take longer than Ray's default 30 s to come up
           "RAY_gcs_server_port_wait_time_s": "120"}


# ----------------------------------------------------------------------------------- objective

def _with_objective(metrics: Mapping[str, Any], intermediate: str | None = None) -> dict[str, Any]:
    """Adds ``objective`` (final when reward and cost are known, else ``intermediate``'s value)
    and ``final_objective`` (0/1: which of the two it is); a final one also as
    ``evaluated_objective``."""
    out = dict(metrics)
    if REWARD in out and COST in out:
        out[METRIC] = out[EVALUATED_METRIC] = objective(out[REWARD], out[COST])
        out["final_objective"] = 1
    elif (intermediate and isinstance(out.get(intermediate), (int, float))
          and math.isfinite(out[intermediate])):
        out[METRIC] = float(out[intermediate])
        out["final_objective"] = 0
    return out


def _progress(stage: Any, count: int) -> int:
    if isinstance(stage, str) and stage in DSPO_STAGES:  # progress = the stages finished
        return max(count, DSPO_STAGES.index(stage) + 1)
    if isinstance(stage, (int, float)) and not isinstance(stage, bool):
        return max(count, int(stage))
    return count


# ----------------------------------------------------------------------------------- searcher

def _optuna_distributions(space: Mapping[str, Distribution]) -> dict[str, Any]:
    import optuna.distributions as od

    out = {}
    for key, d in space.items():
        if d.type == "uniform":
            out[key] = od.FloatDistribution(d.low, d.high)
        elif d.type == "loguniform":
            out[key] = od.FloatDistribution(d.low, d.high, log=True)
        elif d.type == "int":
            out[key] = od.IntDistribution(int(d.low), int(d.high), log=d.log)
        else:
            out[key] = od.CategoricalDistribution(list(d.values))
    return out


def study_name(method: str, task: str) -> str:
    """The Optuna study of a (method, task) cell in the sweep's database."""
    return f"{method}/{task}"


class CellGridSearcher(Searcher):
    """One seeded TPE study per (method, task) cell; each proposal runs on every seed.

    Trial configs look like ``{"method", "task", "seed", "group", "params": {dotted key: value}}``;
    ``group`` names the proposal (``<method>/<task>/<k>``), shared by its seeds' trials and
    recorded as the Optuna trial's ``group`` user attribute.

    The studies live in the sweep's SQLite database (``SweepConfig.optuna_db``), not in Tune's
    searcher checkpoint: that holds the bookkeeping (which group is which Optuna trial number)
    and the samplers' random state, and the studies are reopened from the database.
    """

    def __init__(self, config: SweepConfig, metric: str = METRIC, mode: str = MODE):
        super().__init__(metric=metric, mode=mode)
        from optuna.samplers import TPESampler

        self.seeds = list(config.seeds)
        self.cells: list[tuple[str, str]] = config.cells()
        self.budget = {cell: config.samples_per_cell(cell[0]) for cell in self.cells}
        self.proposed = {cell: 0 for cell in self.cells}
        self.grids = {cell: config.grid(cell[0]) for cell in self.cells}  # fixed configurations
        self.spaces = {cell: _optuna_distributions(config.space(cell[0])) for cell in self.cells}
        self.samplers = {cell: TPESampler(seed=config.search.seed + i,
                                          n_startup_trials=config.search.n_startup_trials)
                         for i, cell in enumerate(self.cells) if self.spaces[cell]}
        self.database = config.optuna_db()
        self.storage_url = config.optuna_storage_url()
        self.sweep_name = config.name
        self.queue: list[dict[str, Any]] = []       # trials of a proposal waiting for suggest()
        self.trial_group: dict[str, str] = {}       # Tune trial id -> group
        self.group_cell: dict[str, tuple[str, str]] = {}
        self.group_results: dict[str, dict[int, float | None]] = {}  # seed -> objective / None
        self.group_seeds: dict[str, dict[str, int]] = {}             # trial id -> seed
        self.group_number: dict[str, int] = {}  # group -> its Optuna trial number, until told
        self.next_cell = 0
        self._studies: dict[tuple[str, str], Any] = {}  # opened on first use

    def __getstate__(self) -> dict[str, Any]:
        # open studies hold database connections; the database is their checkpoint
        return {k: v for k, v in self.__dict__.items() if k != "_studies"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "studies" in state:
            from dspo_ray.io import ArtefactError

            # an older dspo-ray pickled its studies (Tune's OptunaSearch) into the checkpoint
            raise ArtefactError(
                "this experiment was started by an older dspo-ray, whose Optuna studies live in "
                "Tune's searcher checkpoint rather than in optuna.db, and cannot be resumed by this "
                "one; start a new sweep (another --name)")
        self.__dict__.update(state)
        self._studies = {}

    def study(self, cell: tuple[str, str]):
        """The cell's study, created or reopened in the database. Reopened after a driver was
        lost, it may hold trials asked after Tune's last checkpoint, which no Tune trial will
        ever finish: they are marked failed (TPE then ignores them, as a crashed trial)."""
        if cell not in self._studies:
            import optuna

            self.database.parent.mkdir(parents=True, exist_ok=True)
            storage = optuna.storages.RDBStorage(
                self.storage_url,
                # wait for a reader (optuna-dashboard, load_study) instead of failing on its lock
                engine_kwargs={"connect_args": {"timeout": 60}})
            direction = "maximize" if self.mode == "max" else "minimize"
            study = optuna.create_study(storage=storage, sampler=self.samplers[cell],
                                        study_name=study_name(*cell), direction=direction,
                                        load_if_exists=True)
            study.set_user_attr("sweep", self.sweep_name)
            study.set_user_attr("seeds", self.seeds)
            waiting = {number for group, number in self.group_number.items()
                       if self.group_cell[group] == cell}
            for trial in study.get_trials(deepcopy=False,
                                          states=(optuna.trial.TrialState.RUNNING,)):
                if trial.number not in waiting:
                    study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            self._studies[cell] = study
        return self._studies[cell]

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        # the space lives in the cells' studies; Tune's param_space holds no searchable values
        return True

    def _propose(self) -> bool:
        """Queue the next proposal (one trial per seed), cells round-robin; False when done."""
        for _ in range(len(self.cells)):
            cell = self.cells[self.next_cell]
            self.next_cell = (self.next_cell + 1) % len(self.cells)
            if self.proposed[cell] >= self.budget[cell]:
                continue
            k = self.proposed[cell]
            self.proposed[cell] += 1
            group = f"{cell[0]}/{cell[1]}/{k}"
            if self.grids[cell]:
                params = dict(self.grids[cell][k])
            elif self.spaces[cell]:
                trial = self.study(cell).ask(self.spaces[cell])
                trial.set_user_attr("group", group)
                self.group_number[group] = trial.number
                params = dict(trial.params)
            else:
                params = {}
            self.group_cell[group] = cell
            self.group_results[group] = {}
            self.queue += [{"method": cell[0], "task": cell[1], "seed": s, "group": group,
                            "params": dict(params)} for s in self.seeds]
            return True
        return False

    def suggest(self, trial_id: str) -> dict | None:
        if not self.queue and not self._propose():
            return Searcher.FINISHED
        trial_config = self.queue.pop(0)
        self.trial_group[trial_id] = trial_config["group"]
        self.group_seeds.setdefault(trial_config["group"], {})[trial_id] = trial_config["seed"]
        return trial_config

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        group = self.trial_group.get(trial_id)
        if group is None:
            return
        seed = self.group_seeds[group][trial_id]
        final = bool(result) and result.get("final_objective", 1) == 1
        # a trial stopped early by ASHA carries an intermediate score, not the objective
        value = result[self.metric] if (not error and final and self.metric in result) else None
        self.group_results[group][seed] = value
        if len(self.group_results[group]) < len(self.seeds) or group not in self.group_number:
            return
        from optuna.trial import TrialState

        study = self.study(self.group_cell[group])
        number = self.group_number.pop(group)
        values = [v for v in self.group_results[group].values()
                  if v is not None and math.isfinite(v)]
        # skip_if_finished: after a lost driver a resumed group may have been told already
        if values:
            study.tell(number, float(sum(values) / len(values)), skip_if_finished=True)
        else:
            study.tell(number, state=TrialState.FAIL, skip_if_finished=True)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__getstate__(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__setstate__(pickle.load(f))


# ---------------------------------------------------------------------------------- scheduler

class PerCellASHA(FIFOScheduler):
    """Asynchronous successive halving with separate brackets per (method, task) cell."""

    def __init__(self, time_attr: str, max_t: int, grace_period: int, reduction_factor: float,
                 metric: str = METRIC, mode: str = MODE):
        super().__init__()
        self._kwargs = dict(time_attr=time_attr, max_t=max_t, grace_period=grace_period,
                            reduction_factor=reduction_factor, metric=metric, mode=mode)
        self._metric, self._mode = metric, mode
        self.cells: dict[tuple[str, str], AsyncHyperBandScheduler] = {}

    def _cell(self, trial) -> AsyncHyperBandScheduler:
        key = (trial.config.get("method"), trial.config.get("task"))
        if key not in self.cells:
            self.cells[key] = AsyncHyperBandScheduler(**self._kwargs)
        return self.cells[key]

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # fixed at construction

    def on_trial_add(self, tune_controller, trial):
        self._cell(trial).on_trial_add(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result):
        return self._cell(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result):
        self._cell(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial):
        self._cell(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        return f"PerCellASHA over {len(self.cells)} cells ({self._kwargs})"


# ------------------------------------------------------------------------------------ trainable

def _reportable(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What Tune can log: numbers, bools and short strings."""
    out = {}
    for k, v in metrics.items():
        if hasattr(v, "item") and getattr(v, "ndim", 1) == 0:
            v = v.item()
        if isinstance(v, (bool, int, float, str)) or v is None:
            out[k] = v
    return out


def trial_workdir(config: SweepConfig, trial_config: Mapping[str, Any], trial_id: str) -> Path:
    group = trial_config["group"].replace("/", "-")
    return config.work_root() / f"{group}-seed{trial_config['seed']}-{trial_id}"


class TrialRows:
    """What a trial's reports to Tune carry besides a stage's metrics: the objective (final, or the
    scheduler's intermediate score, sent once), ``progress`` (the stages finished: ASHA's time),
    ``time/trial_s`` and the trial's cell. Plain state: a DSPO trial's training stages report from
    its Ray Train worker group (this object travels there and back), its evaluation from the
    trial's process."""

    def __init__(self, cell: dict[str, Any], intermediate_metric: str | None):
        self.cell = dict(cell)
        self.intermediate = intermediate_metric
        self.progress = 0
        self.start = time.time()  # wall clock: the same on every node

    def row(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        out = _with_objective(_reportable(metrics), self.intermediate)
        if out.get("final_objective") == 0:
            # the intermediate score goes out once, at the stage that produced it: later stages
            # (cumulative metrics) would carry the same number to ASHA's later rungs, where it
            # would stop trials on stale information
            self.intermediate = None
        self.progress = _progress(out.get("stage"), self.progress + 1)
        out["progress"] = self.progress
        out["time/trial_s"] = time.time() - self.start
        return {**out, **self.cell}


def train_dspo_on_group(runner, workdir: str, config, rows: TrialRows,
                        stage_cache: str | None = None) -> tuple[TrialRows, dict[str, bytes]]:
    """Rank 0 of a DSPO trial's worker group: ``run_dspo``'s training stages, each stage's result
    a row of the trial's results (through Ray Train to Tune). Returns ``rows`` (its progress) and
    the work folder's files (the artefacts and their metrics): on a cluster without a shared
    filesystem this worker's folder is not the trial's, which evaluates from its own.
    ``stage_cache``: the sweep's stage cache, on this worker's machine."""
    from dspo_ray.dspo.pipeline import run_dspo

    def report(metrics: Mapping[str, Any]) -> None:
        row = rows.row(metrics)
        runner.row_tags = {"progress": rows.progress}
        runner.report(row)

    runner.row_tags = {"progress": rows.progress}
    run_dspo(config, workdir, runner=runner, report=report, train_only=True,
             stage_cache=stage_cache)
    return rows, {name: (Path(workdir) / name).read_bytes() for name in _dspo_work_files()
                  if (Path(workdir) / name).is_file()}


def _dspo_work_files() -> list[str]:
    """A DSPO work folder's config, then the training stages' metrics, then their artefacts (the
    order to write them in: an artefact never exists without its metrics)."""
    from dspo_ray.dspo.pipeline import TRAINING_STAGES

    return (["config.json"] + [f"{s.artefact}.metrics.json" for s in TRAINING_STAGES]
            + [s.artefact for s in TRAINING_STAGES])


def _write_work_files(workdir: Path, files: Mapping[str, bytes]) -> None:
    """The worker group's work files into the trial's folder (the same folder on one machine or a
    shared filesystem: then nothing is written)."""
    from dspo_ray.io import atomic_path

    for name in _dspo_work_files():
        path = workdir / name
        if name in files and not (path.is_file() and path.read_bytes() == files[name]):
            with atomic_path(path) as tmp:
                Path(tmp).write_bytes(files[name])


def run_trial(trial_config: dict[str, Any], sweep: dict[str, Any] | None = None) -> dict:
    """Tune trainable: run one (method, task, seed, configuration) and report to Tune.

    DSPO with ``train.num_workers >= 1``: its training stages run on ONE Ray Train worker group
    (``RayTrainRunner.run_group``: Ray Train's start-up paid once per trial), writing their
    artefacts to the trial's work folder; the evaluation runs in the trial's process (its report
    carries the policy as the trial's checkpoint)."""
    config = sweep_config_from_dict(sweep)
    context = tune.get_context()
    trial_id = context.get_trial_id()
    method, task, seed = trial_config["method"], trial_config["task"], trial_config["seed"]
    params = dict(trial_config.get("params") or {})
    workdir = trial_workdir(config, trial_config, trial_id)
    workdir.mkdir(parents=True, exist_ok=True)
    runner = RayTrainRunner(
        num_workers=config.train.num_workers, use_gpu=config.train.use_gpu,
        cpus_per_worker=config.train.cpus_per_worker, storage_path=config.storage_uri(),
        run_name=f"{config.name}/train/{trial_id}", max_failures=config.train.max_failures,
        report_to_tune=True)
    runner.row_tags = {"progress": 0}  # training rows: the stages done so far (ASHA's time)
    cell = {"method": method, "task": task, "seed": seed, "group": trial_config["group"]}
    rows = TrialRows(cell, config.scheduler.intermediate_metric)
    policy_sent = {"done": False}

    def send(out: dict[str, Any]) -> None:
        """tune.report; the first evaluated report also carries the policy as a checkpoint
        (ASHA stops an evaluated trial at its max_t rung, so a later report may never go out)."""
        policy = workdir / POLICY_FILE
        if policy_sent["done"] or not is_evaluated(out) or not policy.is_file():
            tune.report(out)
            return
        with tempfile.TemporaryDirectory(prefix="dspo-policy-") as tmp:
            shutil.copy2(policy, Path(tmp) / POLICY_FILE)
            # Tune copies the folder into the trial's storage before report returns
            tune.report(out, checkpoint=tune.Checkpoint.from_directory(tmp))
        policy_sent["done"] = True

    def report(metrics: Mapping[str, Any]) -> None:
        send(rows.row(metrics))
        runner.row_tags = {"progress": rows.progress}

    def report_training_row(metrics: Mapping[str, Any]) -> None:
        """A baseline's logged scalars (``step`` + ``losses/...``) as a training row."""
        row = {k: v for k, v in _reportable(metrics).items() if k != "step"}
        tune.report({**row, TRAINING_STEP: metrics.get("step"), "stage": "train",
                     "progress": rows.progress, **cell})

    fixed = config.overrides.get(method, {})
    if method == DSPO:
        from dspo_ray.dspo.pipeline import run_dspo

        dspo_config = method_config(method, task, seed, fixed, params, config.eval_episodes,
                                    config.dataset_dir)
        cache = config.stage_cache_dir()
        stage_cache = None if cache is None else str(cache)
        if config.train.num_workers >= 1:
            # the evaluation here (after the group) finds its worker processes ready
            start_evaluation_workers(task, dspo_config.eval_workers)
            rows, files = runner.run_group("dspo", train_dspo_on_group, workdir,
                                           config=dspo_config, rows=rows, stage_cache=stage_cache)
            _write_work_files(workdir, files)

            def evaluation_only(metrics: Mapping[str, Any]) -> None:
                # the training stages reported from the worker group; here they only reload
                if metrics.get("stage") == "evaluation":
                    report(metrics)

            # the training stages' artefacts are in the work folder now: nothing to look up
            metrics = run_dspo(dspo_config, workdir, runner=runner, report=evaluation_only)
        else:
            metrics = run_dspo(dspo_config, workdir, runner=runner, report=report,
                               stage_cache=stage_cache)
    elif ":" in method:
        fn = import_custom_method(method)
        metrics = fn(task=task, seed=seed, config={**fixed, **params}, workdir=workdir,
                     runner=runner, report=report, eval_episodes=config.eval_episodes)
    else:
        from dspo_ray.baselines.common import run_method

        kwargs = {} if config.eval_episodes is None else {"eval_episodes": config.eval_episodes}
        metrics = run_method(method, task, seed, overrides={**fixed, **params},
                             dataset=config.dataset_dir, workdir=workdir,
                             log=report_training_row, **kwargs)
    final = _with_objective(_reportable(metrics))
    final["time/trial_s"] = time.time() - rows.start
    final["progress"] = max(rows.progress, 1)
    final["completed"] = True
    (workdir / "metrics.json").write_text(json.dumps(final, indent=1, default=str))
    send({**final, **cell})
    return final


# ---------------------------------------------------------------------------------- the sweep

@dataclasses.dataclass
class SweepResult:
    experiment_path: str
    trials: pd.DataFrame
    """One row per trial: method, task, seed, group, params/..., objective, eval/..., status."""
    summary: pd.DataFrame
    """One row per (method, task): the best configuration by mean objective over seeds."""
    work_root: Path
    ray_logs: str | None
    optuna_storage: str | None = None
    """``optuna.load_study``'s storage URL for the cells' studies (None: no cell searched)."""


def start_ray(address: str | None, num_cpus: int | None = None,
              extra_env: Mapping[str, str] | None = None) -> bool:
    """Join ``address`` (``auto``, ``ray://...``, ``host:port``) or start an embedded local Ray
    bound to 127.0.0.1. Returns True when this call started Ray (so the caller shuts it down)."""
    if ray.is_initialized():
        return False
    env = {**RAY_ENV, **(extra_env or {})}
    for k, v in env.items():
        os.environ.setdefault(k, v)
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1",
                 include_dashboard=True,  # Train's cleanup of ASHA-stopped trials needs it
                 dashboard_host="127.0.0.1", dashboard_port=_free_port(),
                 runtime_env={"env_vars": env}, log_to_driver=False)
    return True


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def experiment_path(config: SweepConfig) -> str:
    return f"{config.storage_uri().rstrip('/')}/{config.name}"


class ExperimentExistsError(RuntimeError):
    pass


def _experiments_named(config: SweepConfig) -> list[tuple[float, str]]:
    """(modification time, name) of the experiments ``<name>`` and ``<name>-<timestamp>`` in the
    storage (any pyarrow filesystem)."""
    import pyarrow.fs

    uri = config.storage_uri()
    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(uri if "://" in uri else f"file://{uri}")
        infos = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    except (OSError, ValueError):
        return []
    out = []
    for info in infos:
        name = info.base_name
        if info.type == pyarrow.fs.FileType.Directory and (
                name == config.name or name.startswith(config.name + "-")):
            if tune.Tuner.can_restore(f"{uri.rstrip('/')}/{name}"):
                out.append(((info.mtime.timestamp() if info.mtime else 0.0), name))
    return sorted(out)


def choose_experiment(config: SweepConfig, resume: bool) -> SweepConfig:
    """For a config whose name was not given explicitly: ``resume`` picks the newest experiment
    of that name (``<name>`` or ``<name>-<timestamp>``); a fresh run whose name is taken gets
    ``<name>-<timestamp>`` instead of failing."""
    existing = _experiments_named(config)
    if resume and existing:
        return dataclasses.replace(config, name=existing[-1][1])
    if not resume and any(name == config.name for _, name in existing):
        return dataclasses.replace(config, name=f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    return config


def build_tuner(config: SweepConfig, resume: bool = False,
                max_concurrent: int | None = None) -> tune.Tuner:
    path = experiment_path(config)
    exists = tune.Tuner.can_restore(path)
    if exists and not resume:
        raise ExperimentExistsError(
            f"experiment {config.name!r} already exists at {path}; pass --resume to continue it, "
            f"or --name to start a new one")
    # Trials run in Tune's own working folders: a relative storage or workdir must reach them
    # resolved against the driver's folder, or work folders land in Ray's session folder
    # (where the summary does not point and --resume in a new Ray session cannot find them).
    resolved = dataclasses.replace(config, storage=config.storage_uri(),
                                   workdir=str(config.work_root()))
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, sweep=to_dict(resolved)),
        {"cpu": config.trial.cpus, "gpu": config.trial.gpus,
         "memory": config.trial.memory_mb * 2 ** 20,
         "custom_resources": dict(config.trial.resources)})
    # Ray 2.60's default output engine picks its table's columns itself (the first four keys it
    # sees) and ignores a progress_reporter; the CLIReporter shows what a user watches
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    # A DSPO trial reports after every stage, and every method its training rows; ``objective``
    # exists only once there is something to score (the discriminator's quality, then the
    # evaluation). Tune's strict check would call the other reports an error (resumed runs too).
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    if exists:
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False)
    # a fresh experiment's database left by a run that died before Tune's first checkpoint:
    # its studies' trials belong to no experiment Tune can resume
    config.optuna_db().unlink(missing_ok=True)
    if max_concurrent is None:
        max_concurrent = config.max_concurrent_trials or auto_concurrency(
            config, ray.cluster_resources())
    searcher = ConcurrencyLimiter(CellGridSearcher(config), max_concurrent=max_concurrent)
    if config.scheduler.type == "asha":
        s = config.scheduler
        scheduler = PerCellASHA(s.time_attr, s.max_t, s.grace_period, s.reduction_factor)
    else:
        scheduler = FIFOScheduler()
    return tune.Tuner(
        trainable,
        # metric/mode: what ResultGrid ranks by; the searcher and scheduler keep their own
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    metric=EVALUATED_METRIC, mode=MODE,
                                    num_samples=config.total_trials(), reuse_actors=False),
        run_config=tune.RunConfig(
            name=config.name, storage_path=config.storage_uri(),
            failure_config=tune.FailureConfig(max_failures=config.trial.max_failures),
            progress_reporter=progress_reporter(), callbacks=logger_callbacks(config),
            verbose=1, log_to_file=True),
    )


PROGRESS_COLUMNS = {"stage": "stage", "progress": "progress", TRAINING_STEP: "step",
                    LABEL_FREE_STAGE1_METRIC: "stage1 AUROC", METRIC: "objective",
                    REWARD: "reward", COST: "cost"}
"""The progress table's metric columns (every method): a running trial's row shows its latest
report, a training row (stage being trained, step) or a stage's result."""


def progress_reporter() -> tune.CLIReporter:
    return tune.CLIReporter(metric_columns=PROGRESS_COLUMNS,
                            parameter_columns=["method", "task", "seed"],
                            max_report_frequency=30)


def logger_callbacks(config: SweepConfig) -> list:
    """Tune's JSON and TensorBoard loggers (added by Tune), a progress.csv that keeps every
    column, and W&B when the config enables it."""
    callbacks: list = [GrowingCSVLoggerCallback()]
    if not config.wandb.enabled:
        return callbacks
    from ray.air.integrations.wandb import WandbLoggerCallback

    # the driver's W&B login check reads WANDB_MODE: offline runs need no account
    os.environ["WANDB_MODE"] = config.wandb.mode
    return callbacks + [WandbLoggerCallback(project=config.wandb.project, group=config.name,
                                            mode=config.wandb.mode)]


class GrowingCSVLoggerCallback(CSVLoggerCallback):
    """Tune's progress.csv, whose columns grow with the reports. Tune's own keeps the first
    report's columns: a training row's, which would drop every later stage's losses and the
    evaluation. A report with new keys rewrites the file with them added (a few times a trial)."""

    def log_trial_result(self, iteration: int, trial, result: dict) -> None:
        import csv

        from ray.tune.utils import flatten_dict

        if trial not in self._trial_files:
            self._setup_trial(trial)
        row = flatten_dict({k: v for k, v in result.items() if k != "config"}, delimiter="/")
        path = Path(trial.local_path, "progress.csv")
        writer = self._trial_csv[trial]
        columns = list(writer.fieldnames) if writer is not None else _csv_header(path)
        new = [k for k in row if k not in columns]
        if writer is None or new:
            self._trial_files[trial].close()
            if columns:
                with path.open(newline="") as f:
                    rows = list(csv.DictReader(f))
            tmp = path.with_name(".progress.csv.tmp")
            with tmp.open("w", newline="") as f:
                rewritten = csv.DictWriter(f, columns + new)
                rewritten.writeheader()
                if columns:
                    rewritten.writerows(rows)
            os.replace(tmp, path)
            self._trial_files[trial] = path.open("a", newline="")
            self._trial_csv[trial] = csv.DictWriter(self._trial_files[trial], columns + new)
        self._trial_csv[trial].writerow(row)
        self._trial_files[trial].flush()


def _csv_header(path: Path) -> list[str]:
    import csv

    if not path.is_file() or path.stat().st_size == 0:
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def run_sweep(config: SweepConfig, address: str | None = None, resume: bool = False,
              num_cpus: int | None = None, max_concurrent: int | None = None) -> SweepResult:
    """Run (or, with ``resume``, continue) the sweep; returns per-trial results and the summary.

    Joins the Ray cluster at ``address`` or starts an embedded one for the duration of the call.
    """
    if not resume and tune.Tuner.can_restore(experiment_path(config)):
        build_tuner(config)  # raises ExperimentExistsError, before Ray is started
    check_datasets(config)
    started = start_ray(address, num_cpus=num_cpus)
    try:
        tuner = build_tuner(config, resume=resume, max_concurrent=max_concurrent)
        tuner.fit()
        logs = _ray_log_dir()
    finally:
        if started:
            ray.shutdown()
    return collect_results(config, ray_logs=logs)


def check_datasets(config: SweepConfig) -> None:
    """Every task of a DSPO or baseline cell has a usable dataset here (found, and its header
    checked: columns, row counts, widths; the driver's machine, on a cluster every node has the
    same checkout), or a clear error before anything starts."""
    if all(":" in m for m in config.methods):
        return  # custom methods bring their own data
    from dspo_ray.data import DatasetError, check_task_datasets

    try:
        check_task_datasets(config.tasks, config.dataset_dir)
    except DatasetError as e:
        raise MissingDatasetError(str(e)) from None


class MissingDatasetError(RuntimeError):
    """A task of the sweep has no usable dataset (the message says which and what to do)."""


def _ray_log_dir() -> str | None:
    try:
        context = ray.get_runtime_context()  # Ray's session folder: <temp dir>/<session name>
        return os.path.join(context.get_temp_dir(), context.get_session_name(), "logs")
    except Exception:  # joined a remote cluster: its logs are on its head node
        return None


def collect_results(config: SweepConfig, ray_logs: str | None = None) -> SweepResult:
    """Read the experiment's trials with the analysis reader (the one the tables use, so the two
    agree on what finished), add Tune's failure counts, write trials.csv and summary.csv."""
    from ray.tune import ExperimentAnalysis

    path = experiment_path(config)
    trials, _ = load_results(path)
    # how often each trial failed is Tune's bookkeeping (its experiment state), not a report
    failures = {t.trial_id: t.num_failures
                for t in ExperimentAnalysis(path, default_metric=METRIC, default_mode=MODE).trials}
    trials["failures"] = [int(failures.get(i, 0)) for i in trials["trial_id"]]
    # a retry is a failure followed by another attempt: an errored trial's last failure was not
    trials["retries"] = trials["failures"] - (trials["status"] == "error").astype(int)
    summary = sweep_summary(trials)
    _write_csv(trials, f"{path}/trials.csv")
    _write_csv(summary, f"{path}/summary.csv")
    studies = config.optuna_storage_url() if config.optuna_db().exists() else None
    return SweepResult(path, trials, summary, config.work_root(), ray_logs, studies)


def _write_csv(frame: pd.DataFrame, uri: str) -> None:
    if "://" not in uri or uri.startswith("file://"):
        p = Path(uri.removeprefix("file://"))
        tmp = p.with_name(f".{p.name}.tmp")
        frame.to_csv(tmp, index=False)
        os.replace(tmp, p)
        return
    import pyarrow.fs

    fs, p = pyarrow.fs.FileSystem.from_uri(uri)
    with fs.open_output_stream(p) as f:
        f.write(frame.to_csv(index=False).encode())


def format_summary(result: SweepResult) -> str:
    """The results table per task, then where everything is."""
    lines = []
    s = result.summary
    evaluated = s[s["seeds"] > 0] if not s.empty else s
    if evaluated.empty:
        stage_only = (result.trials["status"] == "stopped_as_configured").any()
        lines.append("no evaluated trial (these trials stop before evaluation: stop_after)"
                     if stage_only else "no trial finished")
    else:
        mw = max(8, *(len(m) for m in evaluated["method"]))
        header = (f"{'method':<{mw}} {'task':<14} {'seeds':>5} {'reward':>8} {'cost':>7} "
                  f"{'safe':>5}  best configuration")
        lines += [header, "-" * len(header)]
        for _, r in s.iterrows():
            if r["seeds"] == 0:
                lines.append(f"{r['method']:<{mw}} {r['task']:<14} {0:>5}  no evaluated trial")
                continue
            cfg = json.loads(r["config"])
            cfg_text = ", ".join(f"{k}={_short(v)}" for k, v in cfg.items()) or "(defaults)"
            lines.append(f"{r['method']:<{mw}} {r['task']:<14} {r['seeds']:>5} "
                         f"{r['reward_mean']:>8.3f} {r['cost_mean']:>7.3f} "
                         f"{'yes' if r['safe'] else 'NO':>5}  {cfg_text}")
        policies = s[(s["seeds"] > 0) & s["policy"].notna()]
        if not policies.empty:
            lines += ["", "best policy per (method, task): the best seed of the configuration "
                          "above; score one with dspo-evaluate (python experiments/evaluate.py) "
                          "--task <task> --policy <file>"]
            lines += [f"{r['method']:<{mw}} {r['task']:<14} {r['policy']}"
                      for _, r in policies.iterrows()]
    t = result.trials
    counts = t["status"].value_counts()
    lines.append("")
    configured = int(counts.get("stopped_as_configured", 0))
    if configured:
        lines.append(f"{configured} trials ran to the stage their config stops after (stop_after; "
                     "no evaluation): their stage-1 metrics are in Table 2 (make_tables)")
    lines.append(f"trials: {len(t)} ({int(counts.get('finished', 0))} finished, "
                 f"{int(counts.get('incomplete', 0))} stopped early or interrupted, "
                 f"{int(counts.get('error', 0))} errored, {int(t['retries'].sum())} retried)")
    lines.append("reward/cost: normalised, mean over seeds; safe = mean normalised cost <= 1")
    lines.append(f"results: {result.experiment_path} (summary.csv, trials.csv, one folder per "
                 f"trial with result.json / progress.csv / error.txt); tables: "
                 f"python analysis/make_tables.py --results {result.experiment_path}")
    lines.append(f"trial work folders (models, datasets, stage checkpoints): {result.work_root}")
    if result.optuna_storage:
        lines.append(f"Optuna studies (one per method/task; optuna.load_study, optuna-dashboard): "
                     f"{result.optuna_storage}")
    if result.ray_logs:
        lines.append(f"Ray logs: {result.ray_logs}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
