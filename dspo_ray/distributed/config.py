"""The sweep's configuration: one YAML file, validated completely before any trial starts.

A sweep is a grid of *cells* -- (method, task) -- crossed with a seed list. In each cell Optuna
(TPE) proposes ``num_samples`` hyperparameter configurations from the method's search space; every
configuration runs once per seed (one Tune trial each), and Optuna is told the seeds' mean
objective. Everything here is plain Python (no ray import), so ``--help`` and config errors are
instant.

Search-space entries are dotted keys into the method's own config (``discriminator.vclub_coef``
for DSPO, ``alpha`` for TD3+BC, ...) with a distribution::

    discriminator.vclub_coef: {type: loguniform, low: 0.01, high: 1.0}
    discriminator.return_bins: {type: int, low: 5, high: 20}
    generation.return_condition: {type: uniform, low: 0.5, high: 1.2}
    discriminator.variant: {type: choice, values: [safety_transformer, mlp]}

A method can instead run a fixed list of configurations (``search.grid``, no Optuna), each a
group of its own, e.g. Table 2's discriminator variants::

    grid:
      dspo:
        - {discriminator.return_agnostic: true}
        - {discriminator.return_agnostic: false}

Validation builds each method's config with every search-space bound and every choice applied (and
the fixed ``overrides``), so a misspelt key or an out-of-range bound is reported by name here.

Selection never reads the hidden truth (``dspo_ray.metrics``): a scheduler metric named like a
hidden-truth metric (``discriminator/...``, ``neg_return/...``, ``diagnostic/...``) is refused, and
so are DSPO's oracle diagnostics (``stage1_oracle``, ``stage2_oracle``) in a search space or in
a Table 1 sweep.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from dspo_ray.config import ConfigError, from_dict, load_yaml, unflatten
from dspo_ray.metrics import (EVALUATION_PREFIX, HIDDEN_TRUTH_PREFIXES, LABEL_FREE_STAGE1_METRIC,
                              reads_hidden_truth)

DSPO = "dspo"
"""The paper's method; every other name is a baseline from ``dspo_ray.baselines`` or an import
path ``package.module:function`` of a custom method (see ``dspo_ray.distributed.sweep``)."""

DISTRIBUTIONS = ("uniform", "loguniform", "int", "choice")

TABLE1_BASELINES = ("bc_all", "bc_safe", "td3bc", "iql", "cql", "dwbc", "rgm", "cdtv")
"""Table 1's baselines: a sweep that runs DSPO beside any of them (or is named ``table1...``) is
a Table 1 sweep, where the oracle diagnostics are refused."""
ORACLE_KEYS = ("stage1_oracle", "stage2_oracle")
"""DSPO's diagnostics that replace a stage by the hidden truth (its signal; its generated windows)."""
OPTUNA_DB = "optuna.db"


@dataclass(frozen=True)
class Distribution:
    """One search-space dimension."""

    type: Literal["uniform", "loguniform", "int", "choice"]
    """uniform / loguniform: a float in [low, high]; int: an integer in [low, high] (log: true
    for a log scale); choice: one of ``values``."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    """For ``int`` only: sample on a log scale."""
    values: tuple[Any, ...] | None = None
    """For ``choice`` only."""

    def __post_init__(self):
        if self.type == "choice":
            if not self.values:
                raise ConfigError("type choice needs a non-empty 'values' list")
            if self.low is not None or self.high is not None:
                raise ConfigError("type choice takes 'values', not low/high")
            return
        if self.values is not None:
            raise ConfigError(f"type {self.type} takes low/high, not 'values'")
        if self.low is None or self.high is None:
            raise ConfigError(f"type {self.type} needs both 'low' and 'high'")
        if not self.low < self.high:
            raise ConfigError(f"low ({self.low}) must be < high ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ConfigError(f"type loguniform needs low > 0, got {self.low}")
        if self.type == "int" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ConfigError(f"type int needs integer bounds, got {self.low}, {self.high}")
        if self.log and self.type != "int":
            raise ConfigError("'log' applies to type int only (use type loguniform for floats)")

    def extremes(self) -> list[Any]:
        """Values that together exercise the whole range (used to validate against a config)."""
        if self.type == "choice":
            return list(self.values)
        if self.type == "int":
            return [int(self.low), int(self.high)]
        return [float(self.low), float(self.high)]


@dataclass(frozen=True)
class TrainResources:
    """Ray Train workers for the training stages (discriminator, diffusion, behaviour cloning): a
    DSPO trial runs all three on one worker group; a custom method starts one per stage."""

    num_workers: int = 1
    """Data-parallel (DDP) workers of the group; 0 trains in the trial's own process, no Ray
    Train."""
    use_gpu: bool = False
    """One GPU per worker, NCCL backend; false: CPU workers, gloo backend."""
    cpus_per_worker: float = 1.0
    max_failures: int = 1
    """Ray Train restarts of the worker group (the interrupted stage from its last checkpoint)
    after a worker or node dies, before the trial fails."""

    def __post_init__(self):
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers: must be >= 0, got {self.num_workers}")
        if self.cpus_per_worker <= 0:
            raise ConfigError(f"train.cpus_per_worker: must be > 0, got {self.cpus_per_worker}")
        if self.max_failures < -1:
            raise ConfigError("train.max_failures: -1 (forever) or >= 0")


@dataclass(frozen=True)
class TrialResources:
    """The trial's own process: it runs data loading, generation and evaluation, and drives the
    training stages' worker groups."""

    cpus: float = 1.0
    """CPUs reserved for the trial process. 0 lets a trial's workers use every CPU of a small
    machine (the process then idles while its workers train)."""
    gpus: float = 0.0
    memory_mb: int = 256
    """Memory reserved for the trial process (Ray needs a non-empty reservation when cpus is 0)."""
    resources: dict[str, float] = field(default_factory=dict)
    """Custom Ray resources for the trial process, e.g. ``{trial_slot: 1}`` to place trials only
    on nodes started with ``--resources '{"trial_slot": 4}'`` (a stable on-demand node, say)."""
    max_failures: int = 2
    """Tune retries of a trial that raised (each retry resumes from the finished stages); after
    that the trial is marked errored and the sweep goes on."""

    def __post_init__(self):
        if self.cpus < 0 or self.gpus < 0 or self.memory_mb < 0:
            raise ConfigError("trial.cpus, trial.gpus and trial.memory_mb must be >= 0")
        if self.cpus == 0 and self.gpus == 0 and self.memory_mb == 0:
            raise ConfigError("trial: cpus, gpus and memory_mb are all 0; Ray needs a non-empty "
                              "reservation (set memory_mb, e.g. 256)")
        if self.max_failures < -1:
            raise ConfigError("trial.max_failures: -1 (forever) or >= 0")


@dataclass(frozen=True)
class SearchSettings:
    """The search algorithm: Optuna's TPE, one study per cell in the sweep's Optuna database
    (``SweepConfig.optuna_db``)."""

    seed: int = 0
    """Seeds every cell's TPE sampler (each cell adds its index, so cells differ yet repeat)."""
    n_startup_trials: int = 5
    """Random configurations per cell before TPE models the results (Optuna's default: 10)."""
    space: dict[str, dict[str, Distribution]] = field(default_factory=dict)
    """method -> {dotted config key -> distribution}. A method without a space runs its
    defaults (plus ``overrides``) once per seed."""
    grid: dict[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)
    """method -> a list of configurations ({dotted config key -> value}), each run once per seed
    as its own group, in order (no Optuna; ``num_samples`` does not apply). A method has a space
    or a grid, not both."""


@dataclass(frozen=True)
class SchedulerSettings:
    """Early stopping on intermediate reports, per cell (trials of different tasks never compete)."""

    type: Literal["asha", "fifo"] = "asha"
    """asha: asynchronous successive halving on ``objective``; fifo: every trial runs to the end."""
    time_attr: str = "progress"
    """The reported counter ASHA's rungs count in; ``progress`` is the number of DSPO stages
    done (1 discriminator, 2 labels, 3 diffusion, 4 generation, 5 bc, 6 evaluation) and survives
    resumes."""
    max_t: int = 6
    grace_period: int = 2
    """The first rung: at progress 2 the discriminator's quality is known."""
    reduction_factor: float = 3.0
    intermediate_metric: str | None = LABEL_FREE_STAGE1_METRIC
    """Before evaluation there is no reward or cost: trials report this metric as ``objective``
    so ASHA can stop configurations whose stage 1 looks worse than the cell's others. It must be
    computed from the learner's data alone: the default (``dspo_ray.metrics.LABEL_FREE_STAGE1_METRIC``)
    is how highly the demonstrations held out of stage-1 training rank among the unlabelled
    trajectories that earn at least as much. Metrics that read the hidden truth (``discriminator/...``, ``neg_return/...``,
    ``diagnostic/...``) are refused. Optuna only ever sees final objectives (the simulator
    evaluation). null: no intermediate objective, ASHA then only acts on evaluated results."""

    def __post_init__(self):
        if self.grace_period < 1 or self.max_t < self.grace_period:
            raise ConfigError("scheduler: need 1 <= grace_period <= max_t")
        if self.reduction_factor <= 1:
            raise ConfigError("scheduler.reduction_factor: must be > 1")
        m = self.intermediate_metric
        if m is not None and reads_hidden_truth(m):
            raise ConfigError(
                f"scheduler.intermediate_metric: {m!r} reads the hidden truth (the unlabelled "
                f"trajectories' cost labels: metrics under {', '.join(HIDDEN_TRUTH_PREFIXES)}); "
                "in the cost-label-free setting no cost label may reach selection. Use a "
                f"label-free metric such as {LABEL_FREE_STAGE1_METRIC!r}, or null")
        if m is not None and m.startswith(EVALUATION_PREFIX):
            raise ConfigError(
                f"scheduler.intermediate_metric: {m!r} is the final simulator evaluation, which "
                "is already the objective; the intermediate metric is for before it (e.g. "
                f"{LABEL_FREE_STAGE1_METRIC!r}), or null")


@dataclass(frozen=True)
class WandbSettings:
    """Optional: every trial's reports, training rows included, to Weights & Biases (Tune's
    ``WandbLoggerCallback``, one W&B run per trial, grouped by experiment name). Off by default;
    TensorBoard and CSV logs are always written under the experiment folder."""

    enabled: bool = False
    project: str = "dspo-ray"
    mode: Literal["offline", "online"] = "offline"
    """offline: no account needed, runs stay on disk for a later ``wandb sync``; online: needs
    ``wandb login`` (or WANDB_API_KEY) on the driver."""

    def __post_init__(self):
        import importlib.util

        if self.enabled and importlib.util.find_spec("wandb") is None:
            raise ConfigError("wandb.enabled: the wandb package is not installed here; "
                              "pip install wandb, or set wandb.enabled: false")


@dataclass(frozen=True)
class SweepConfig:
    name: str = "dspo-sweep"
    """Experiment name: results go to ``<storage>/<name>``; ``--resume`` looks for it there."""
    tasks: tuple[str, ...] = ("CarCircle",)
    """Task names (dspo_ray.tasks.TASKS)."""
    seeds: tuple[int, ...] = (0,)
    """Every configuration runs once per seed."""
    methods: tuple[str, ...] = (DSPO,)
    """``dspo``, a baseline (bc_all, bc_safe, td3bc, iql, cql, dwbc, rgm, cdtv) or
    ``package.module:function``."""
    num_samples: int = 4
    """Hyperparameter configurations Optuna proposes per (method, task) cell."""
    search: SearchSettings = field(default_factory=SearchSettings)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """method -> {dotted config key -> fixed value} for every trial of that method (e.g.
    ``dspo: {profile: quick}``; DSPO's ``profile`` picks the defaults the rest goes on top of)."""
    eval_episodes: int | None = None
    """Evaluation episodes per trial; None: the method's own default (paper: 20)."""
    dataset_dir: str | None = None
    """Folder of DSRL HDF5 files for every task; None: $DSRL_DATASET_DIR, then the shipped ones.
    Must exist on every node of a cluster."""
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    train: TrainResources = field(default_factory=TrainResources)
    trial: TrialResources = field(default_factory=TrialResources)
    wandb: WandbSettings = field(default_factory=WandbSettings)
    max_concurrent_trials: int | None = None
    """Trials running at once; None: what the cluster's CPUs/GPUs hold when the sweep starts
    (on an autoscaling cluster set it to what the cluster can grow to)."""
    storage: str = "results/sweeps"
    """Where Tune writes results, logs and checkpoints: a local folder, ``file://``, ``s3://``,
    ``gs://`` or any pyarrow filesystem URI. Multi-node clusters need a shared one."""
    workdir: str | None = None
    """Where trials keep their stage artefacts (datasets, models; what a retried trial resumes
    from): a local path visible to every node (NFS on a cluster). None: ``<storage>/<name>/work``
    for local storage, ``~/dspo-ray-work/<name>`` otherwise."""
    stage_cache: bool = True
    """DSPO trials share stage artefacts through ``<workdir>/stage_cache``
    (``dspo_ray.dspo.stage_cache``): a trial whose discriminator, labels or diffusion settings (and
    seed, split, dataset file) match an earlier trial's copies those stages instead of training
    them, so a search over generation or BC settings trains stages 1-2 once per seed. On by
    default because it changes no result: the key holds every setting the artefact depends on.
    Two trials that start together with the same key both train (the first to finish
    publishes). On a cluster without a shared filesystem each node has its own cache (still
    correct, fewer hits). False: every trial trains every stage."""

    def __post_init__(self):
        from dspo_ray.tasks import get_task

        if not self.tasks:
            raise ConfigError("tasks: at least one task is needed")
        for i, t in enumerate(self.tasks):
            try:
                get_task(t)
            except KeyError as e:
                raise ConfigError(f"tasks[{i}]: {e}") from None
        if not self.seeds:
            raise ConfigError("seeds: at least one seed is needed")
        if any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds: must be >= 0, got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds) or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError("tasks and seeds must not repeat")
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ConfigError("methods: give at least one method, each once")
        if self.num_samples < 1:
            raise ConfigError(f"num_samples: must be >= 1, got {self.num_samples}")
        if self.eval_episodes is not None and self.eval_episodes < 1:
            raise ConfigError(f"eval_episodes: must be >= 1, got {self.eval_episodes}")
        if self.max_concurrent_trials is not None and self.max_concurrent_trials < 1:
            raise ConfigError("max_concurrent_trials: must be >= 1 (or null for automatic)")
        _check_method_names(self.methods)  # before the sections keyed by method name
        for where, per_method in (("search.space", self.search.space), ("overrides", self.overrides),
                                  ("search.grid", self.search.grid)):
            for method in per_method:
                if method not in self.methods:
                    raise ConfigError(f"{where}.{method}: not one of the sweep's methods "
                                      f"({', '.join(self.methods)})")
        for method in self.search.grid:
            if method in self.search.space:
                raise ConfigError(f"search.grid.{method}: {method} also has a search.space; "
                                  "give a method one or the other")
        if not self.name or "/" in self.name:
            raise ConfigError(f"name: must be non-empty without '/', got {self.name!r}")

    # --- derived ------------------------------------------------------------------------------

    def space(self, method: str) -> dict[str, Distribution]:
        return dict(self.search.space.get(method, {}))

    def grid(self, method: str) -> list[dict[str, Any]]:
        return [dict(point) for point in self.search.grid.get(method, ())]

    def samples_per_cell(self, method: str) -> int:
        """A grid's length; ``num_samples`` with a search space; else one: the defaults."""
        if self.grid(method):
            return len(self.grid(method))
        return self.num_samples if self.space(method) else 1

    def is_table1(self) -> bool:
        """DSPO beside Table 1's baselines, or a sweep named ``table1...``."""
        return DSPO in self.methods and (
            any(m in TABLE1_BASELINES for m in self.methods) or self.name.startswith("table1"))

    def selection_metrics(self) -> dict[str, list[str]]:
        """The metrics each selecting component reads: ``scheduler`` (ASHA: the intermediate
        metric, then the final objective), ``searcher`` (Optuna: the final objective only). The
        final objective is computed from the simulator evaluation's normalised reward and cost."""
        final = ["eval/normalized_reward", "eval/normalized_cost"]  # analysis.results.REWARD, COST
        scheduler: list[str] = []
        if self.scheduler.type == "asha":
            scheduler = ([self.scheduler.intermediate_metric]
                         if self.scheduler.intermediate_metric else []) + final
        searcher = final if any(self.space(m) for m in self.methods) else []
        return {"scheduler": scheduler, "searcher": searcher}

    def cells(self) -> list[tuple[str, str]]:
        """(method, task) pairs in a fixed order (also the order Optuna studies are seeded in)."""
        return [(m, t) for m in self.methods for t in self.tasks]

    def total_trials(self) -> int:
        return sum(self.samples_per_cell(m) for m, _ in self.cells()) * len(self.seeds)

    def is_remote_storage(self) -> bool:
        return "://" in self.storage and not self.storage.startswith("file://")

    def local_storage_path(self) -> Path | None:
        if self.is_remote_storage():
            return None
        path = self.storage[len("file://"):] if self.storage.startswith("file://") else self.storage
        return Path(path).expanduser().resolve()

    def work_root(self) -> Path:
        if self.workdir is not None:
            return Path(self.workdir).expanduser().resolve()
        local = self.local_storage_path()
        if local is not None:
            return local / self.name / "work"
        return Path("~/dspo-ray-work").expanduser() / self.name

    def stage_cache_dir(self) -> Path | None:
        """The DSPO trials' shared stage cache (None: off)."""
        return self.work_root() / "stage_cache" if self.stage_cache else None

    def storage_uri(self) -> str:
        """What Tune's ``storage_path`` gets: an absolute local path or the URI as given."""
        local = self.local_storage_path()
        return str(local) if local is not None else self.storage

    def optuna_db(self) -> Path:
        """The SQLite file holding the sweep's Optuna studies, one per (method, task) cell with a
        search space (named ``<method>/<task>``): ``<storage>/<name>/optuna.db`` beside Tune's
        results; with remote storage ``<workdir>/optuna.db`` on the driver's machine (SQLite
        needs a local file)."""
        local = self.local_storage_path()
        return (local / self.name if local is not None else self.work_root()) / OPTUNA_DB

    def optuna_storage_url(self) -> str:
        """What ``optuna.load_study(study_name=..., storage=...)`` (and optuna-dashboard) take."""
        return f"sqlite:///{self.optuna_db()}"


def _distribution(method: str, key: str, spec: Any) -> Distribution:
    where = f"search.space.{method}.{key}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{type: uniform, low: 0, high: 1}}, "
                          f"got {spec!r}")
    if spec.get("type") not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.type: {spec.get('type')!r} is not one of {list(DISTRIBUTIONS)}")
    try:
        return from_dict(Distribution, spec, _prefix=where)
    except ConfigError as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(where) else f"{where}: {msg}") from None


def sweep_config_from_dict(data: Mapping[str, Any]) -> SweepConfig:
    """Build and fully validate a :class:`SweepConfig` (see :func:`check_method_configs`)."""
    data = dict(data)
    search = dict(data.get("search") or {})
    if "search" in data and not isinstance(data["search"], Mapping):
        raise ConfigError("search: expected a mapping")
    space = search.get("space") or {}
    if not isinstance(space, Mapping):
        raise ConfigError("search.space: expected a mapping of method -> {key: distribution}")
    parsed: dict[str, dict[str, Distribution]] = {}
    for method, dims in space.items():
        if not isinstance(dims, Mapping):
            raise ConfigError(f"search.space.{method}: expected a mapping of key -> distribution")
        parsed[method] = {k: _distribution(method, k, v) for k, v in dims.items()}
    grid = search.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError("search.grid: expected a mapping of method -> [{key: value}, ...]")
    parsed_grid: dict[str, tuple[dict[str, Any], ...]] = {}
    for method, points in grid.items():
        if (not isinstance(points, (list, tuple)) or not points
                or not all(isinstance(p, Mapping) for p in points)):
            raise ConfigError(f"search.grid.{method}: expected a non-empty list of "
                              "{dotted key: value} mappings")
        parsed_grid[method] = tuple(dict(p) for p in points)
    search["space"] = {}
    search["grid"] = {}
    data["search"] = search
    for key in ("overrides",):
        if key in data and data[key] is not None:
            if not isinstance(data[key], Mapping) or not all(
                    isinstance(v, Mapping) for v in data[key].values()):
                raise ConfigError(f"{key}: expected a mapping of method -> {{key: value}}")
    config = from_dict(SweepConfig, data)
    # replace() re-runs __post_init__, now with the space and grid in place
    config = dataclasses.replace(
        config, search=dataclasses.replace(config.search, space=parsed, grid=parsed_grid))
    check_method_configs(config)
    check_oracle(config)
    return config


def check_oracle(config: SweepConfig) -> None:
    """DSPO's oracle diagnostics (``stage1_oracle``: the hidden truth as the signal;
    ``stage2_oracle``: real truly-safe windows for the generated ones) are upper bounds: never
    something to search over (that would select on the truth) and never in Table 1."""
    if DSPO not in config.methods:
        return
    fixed = config.overrides.get(DSPO, {})
    for key in ORACLE_KEYS:
        if key in config.space(DSPO):
            raise ConfigError(f"search.space.{DSPO}.{key}: the oracle reads the hidden truth; "
                              "searching over it would select on cost labels. Run it as a fixed "
                              "override or a search.grid entry in a diagnostic sweep")
        uses = [f"overrides.{DSPO}.{key}"] if fixed.get(key) else []
        uses += [f"search.grid.{DSPO}[{i}].{key}" for i, point in enumerate(config.grid(DSPO))
                 if {**fixed, **point}.get(key)]
        if uses and config.is_table1():
            raise ConfigError(f"{uses[0]}: the oracle (hidden truth) is a diagnostic upper bound "
                              "and is kept out of Table 1; this sweep runs DSPO beside Table 1's "
                              "baselines (or is named table1...). Run the oracle in its own sweep "
                              "(methods: [dspo]); make_tables shows it in its own table")


def load_sweep_config(path: str | Path, **overrides: Any) -> SweepConfig:
    """Read a sweep YAML; ``overrides`` (e.g. ``storage=...``) replace top-level keys."""
    data = load_yaml(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if overrides.get("methods") is not None:
        # a subset of the file's methods chosen on the command line: their sections only
        chosen = set(overrides["methods"])
        search = data.get("search") if isinstance(data.get("search"), dict) else {}
        for section in (data.get("overrides"), search.get("space"), search.get("grid")):
            if isinstance(section, dict):
                for method in [m for m in section if m not in chosen]:
                    del section[method]
    try:
        return sweep_config_from_dict(data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# ------------------------------------------------------------------ method configs, validated

def method_config(method: str, task: str, seed: int, fixed: Mapping[str, Any],
                  params: Mapping[str, Any], eval_episodes: int | None = None,
                  dataset_dir: str | None = None) -> Any:
    """The validated config object a trial of ``method`` runs with (DSPO: a DSPOConfig; a baseline:
    its config dataclass; a custom method: the merged dict). Raises ConfigError naming the key."""
    merged = {**fixed, **params}
    if method == DSPO:
        from dspo_ray.dspo.config import load_dspo_config

        data = unflatten(merged)
        data.update(task=task, seed=seed)
        if eval_episodes is not None:
            data["eval_episodes"] = eval_episodes
        if dataset_dir is not None:
            data["dataset"] = dataset_dir
        return load_dspo_config(data)
    if ":" in method:
        return dict(merged)
    from dspo_ray.baselines.common import config_from_dict, get_method

    config_cls, _ = get_method(method)
    return config_from_dict(config_cls, {**unflatten(merged), "seed": seed})


def check_method_configs(config: SweepConfig) -> None:
    """Every method exists and accepts its fixed overrides and every end of its search space."""
    for method in config.methods:
        if ":" in method:
            import_custom_method(method)
            continue
        if method != DSPO:
            try:
                from dspo_ray.baselines.common import get_method
            except ImportError as e:  # pragma: no cover - the baselines package is part of the repo
                raise ConfigError(f"methods: {method!r} needs dspo_ray.baselines ({e})") from None
            try:
                get_method(method)
            except KeyError as e:
                raise ConfigError(f"methods: {e}") from None
        fixed = config.overrides.get(method, {})
        space = config.space(method)
        probes: list[tuple[str, dict[str, Any]]] = [(f"overrides.{method}", {})]
        for key, dist in space.items():
            probes += [(f"search.space.{method}.{key}", {key: v}) for v in dist.extremes()]
        probes += [(f"search.grid.{method}[{i}]", point)
                   for i, point in enumerate(config.grid(method))]
        for where, probe in probes:
            try:
                method_config(method, config.tasks[0], config.seeds[0], fixed, probe,
                              config.eval_episodes, config.dataset_dir)
            except (ConfigError, ValueError, TypeError) as e:
                raise ConfigError(f"{where}: {e}") from None


def _check_method_names(methods: tuple[str, ...]) -> None:
    from dspo_ray.baselines.common import METHODS

    for i, method in enumerate(methods):
        if method != DSPO and ":" not in method and method not in METHODS:
            raise ConfigError(f"methods[{i}]: unknown method {method!r}; known methods: "
                              f"{', '.join([DSPO, *METHODS])} (or package.module:function)")


def import_custom_method(path: str):
    """The function a custom method ``package.module:function`` names; ConfigError if it is not there."""
    import importlib

    module_name, _, attr = path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"methods: cannot import custom method {path!r}: {e}") from None


def auto_concurrency(config: SweepConfig, cluster: Mapping[str, float]) -> int:
    """How many trials fit at once in ``cluster`` (Ray's resource dict: CPU, GPU, ...)."""
    t, w = config.trial, config.train
    per_trial_cpu = t.cpus + w.num_workers * w.cpus_per_worker
    per_trial_gpu = t.gpus + (w.num_workers if w.use_gpu else 0)
    limits = []
    if per_trial_cpu > 0:
        limits.append(math.floor(cluster.get("CPU", 0) / per_trial_cpu + 1e-9))
    if per_trial_gpu > 0:
        limits.append(math.floor(cluster.get("GPU", 0) / per_trial_gpu + 1e-9))
    return max(1, min(limits) if limits else os.cpu_count() or 1)
