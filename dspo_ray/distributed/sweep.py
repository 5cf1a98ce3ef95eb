"""Sweeps on Ray Tune: Optuna (TPE) per (method, task) cell, every configuration on every seed.

The pieces, top to bottom:

* ``objective`` (from ``dspo_ray.analysis.results``) -- the constrained goal as one number:
  maximise normalised reward subject to normalised cost <= 1, lexicographically.
* :class:`CellGridSearcher` -- a Tune ``Searcher`` holding one Tune ``OptunaSearch`` (seeded TPE)
  per (method, task) cell. Each configuration Optuna proposes becomes one Tune trial per seed;
  when all its seeds are done Optuna is told their mean objective. Tasks and seeds are therefore a
  grid across the search space, in one Tune experiment that fills the whole cluster.
* :class:`PerCellASHA` -- ASHA early stopping, one bracket set per cell (a hard task's trials
  never compete with an easy task's).
* :func:`run_trial` -- the Tune trainable: one (method, task, seed, configuration). DSPO's
  training stages run on Ray Train workers (:class:`RayTrainRunner`); ``run_dspo`` reports after
  each stage and those reports go to Tune (ASHA acts on them).
* :func:`run_sweep` -- starts or joins Ray, builds (or restores) the Tuner, runs it, and writes
  the per-task summary.

Reliability: a trial that raises is retried ``trial.max_failures`` times (each retry skips the
stages whose artefacts are in its work folder and resumes the interrupted stage from its Ray
Train checkpoint); the sweep goes on past a trial that keeps failing. ``resume=True`` continues
an interrupted experiment with ``Tuner.restore``: finished trials are kept, unfinished and errored
ones run again (resuming their stages), and the searchers' Optuna studies come back from Tune's
experiment checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

import ray
from ray import tune
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher
from ray.tune.search.optuna import OptunaSearch

from dspo_ray.analysis.results import COST, REWARD, load_results, objective
from dspo_ray.analysis.tables import sweep_summary
from dspo_ray.config import to_dict
from dspo_ray.distributed.config import (DSPO, Distribution, SweepConfig, auto_concurrency,
                                         import_custom_method, method_config,
                                         sweep_config_from_dict)
from dspo_ray.distributed.train_runner import RayTrainRunner
from dspo_ray.dspo.config import STAGES as DSPO_STAGES

METRIC = "objective"
MODE = "max"

# Ray Train's controller polls its workers every RAY_TRAIN_HEALTH_CHECK_INTERVAL_S (default 2 s)
# and each ray.train.report waits for a poll: 0.2 s saves ~3 s per stage and ~1.8 s per report.
RAY_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.2", "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
           # on a busy machine the GCS can take longer than Ray's default 30 s to come up
           "RAY_gcs_server_port_wait_time_s": "120"}


# ----------------------------------------------------------------------------------- objective

def _with_objective(metrics: Mapping[str, Any], intermediate: str | None = None) -> dict[str, Any]:
    """Adds ``objective`` (final when reward and cost are known, else ``intermediate``'s value)
    and ``final_objective`` (0/1: which of the two it is)."""
    out = dict(metrics)
    if REWARD in out and COST in out:
        out[METRIC] = objective(out[REWARD], out[COST])
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


def _flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """OptunaSearch un-flattens '/'-separated names; our keys use '.', so this only undoes
    accidental nesting."""
    out = {}
    for k, v in nested.items():
        key = f"{prefix}/{k}" if prefix else k
        if isinstance(v, Mapping):
            out.update(_flatten(v, key))
        else:
            out[key] = v
    return out


class CellGridSearcher(Searcher):
    """One seeded TPE study per (method, task) cell; each proposal runs on every seed.

    Trial configs look like ``{"method", "task", "seed", "group", "params": {dotted key: value}}``;
    ``group`` names the proposal (``<method>/<task>/<k>``), shared by its seeds' trials.
    """

    def __init__(self, config: SweepConfig, metric: str = METRIC, mode: str = MODE):
        super().__init__(metric=metric, mode=mode)
        from optuna.samplers import TPESampler

        self.seeds = list(config.seeds)
        self.cells: list[tuple[str, str]] = config.cells()
        self.budget = {cell: config.samples_per_cell(cell[0]) for cell in self.cells}
        self.proposed = {cell: 0 for cell in self.cells}
        self.studies: dict[tuple[str, str], OptunaSearch | None] = {}
        self.grids = {cell: config.grid(cell[0]) for cell in self.cells}  # fixed configurations
        for i, (method, task) in enumerate(self.cells):
            space = config.space(method)
            if not space:
                self.studies[(method, task)] = None
                continue
            sampler = TPESampler(seed=config.search.seed + i,
                                 n_startup_trials=config.search.n_startup_trials)
            self.studies[(method, task)] = OptunaSearch(
                space=_optuna_distributions(space), metric=metric, mode=mode, sampler=sampler)
        self.queue: list[dict[str, Any]] = []       # trials of a proposal waiting for suggest()
        self.trial_group: dict[str, str] = {}       # Tune trial id -> group
        self.group_cell: dict[str, tuple[str, str]] = {}
        self.group_results: dict[str, dict[int, float | None]] = {}  # seed -> objective / None
        self.group_seeds: dict[str, dict[str, int]] = {}             # trial id -> seed
        self.next_cell = 0

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
            study = self.studies[cell]
            grid = getattr(self, "grids", {}).get(cell)
            if grid:
                params = dict(grid[k])
            else:
                params = _flatten(study.suggest(group)) if study is not None else {}
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
        if len(self.group_results[group]) < len(self.seeds):
            return
        study = self.studies[self.group_cell[group]]
        if study is None:
            return
        values = [v for v in self.group_results[group].values()
                  if v is not None and math.isfinite(v)]
        if values:
            study.on_trial_complete(group, {self.metric: float(sum(values) / len(values))})
        else:
            study.on_trial_complete(group, None, error=True)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


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


def run_trial(trial_config: dict[str, Any], sweep: dict[str, Any] | None = None) -> dict:
    """Tune trainable: run one (method, task, seed, configuration) and report to Tune."""
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
        run_name=f"{config.name}/train/{trial_id}", max_failures=config.train.max_failures)
    progress = {"n": 0}
    start = time.perf_counter()
    cell = {"method": method, "task": task, "seed": seed, "group": trial_config["group"]}

    intermediate = {"metric": config.scheduler.intermediate_metric}

    def report(metrics: Mapping[str, Any]) -> None:
        out = _with_objective(_reportable(metrics), intermediate["metric"])
        if out.get("final_objective") == 0:
            # the intermediate score goes out once, at the stage that produced it: later stages
            # (cumulative metrics) would carry the same number to ASHA's later rungs, where it
            # would stop trials on stale information
            intermediate["metric"] = None
        progress["n"] = _progress(out.get("stage"), progress["n"] + 1)
        out["progress"] = progress["n"]
        out["time/trial_s"] = time.perf_counter() - start
        tune.report({**out, **cell})

    fixed = config.overrides.get(method, {})
    if method == DSPO:
        from dspo_ray.dspo.pipeline import run_dspo

        dspo_config = method_config(method, task, seed, fixed, params, config.eval_episodes,
                                    config.dataset_dir)
        metrics = run_dspo(dspo_config, workdir, runner=runner, report=report)
    elif ":" in method:
        fn = import_custom_method(method)
        metrics = fn(task=task, seed=seed, config={**fixed, **params}, workdir=workdir,
                     runner=runner, report=report, eval_episodes=config.eval_episodes)
    else:
        from dspo_ray.baselines.common import run_method

        kwargs = {} if config.eval_episodes is None else {"eval_episodes": config.eval_episodes}
        metrics = run_method(method, task, seed, overrides={**fixed, **params},
                             dataset=config.dataset_dir, workdir=workdir, **kwargs)
    final = _with_objective(_reportable(metrics))
    final["time/trial_s"] = time.perf_counter() - start
    final["progress"] = max(progress["n"], 1)
    final["completed"] = True
    (workdir / "metrics.json").write_text(json.dumps(final, indent=1, default=str))
    tune.report({**final, **cell})
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
    if exists:
        return tune.Tuner.restore(path, trainable=trainable, resume_unfinished=True,
                                  resume_errored=True, restart_errored=False)
    # A DSPO trial reports after every stage; ``objective`` exists only once there is something
    # to score (the discriminator's quality, then the evaluation). Tune's strict check would call
    # the earlier reports an error.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
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
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                                    num_samples=config.total_trials(), reuse_actors=False),
        run_config=tune.RunConfig(
            name=config.name, storage_path=config.storage_uri(),
            failure_config=tune.FailureConfig(max_failures=config.trial.max_failures),
            verbose=1, log_to_file=True),
    )


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
    return SweepResult(path, trials, summary, config.work_root(), ray_logs)


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
    if result.ray_logs:
        lines.append(f"Ray logs: {result.ray_logs}")
    return "\n".join(lines)


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
