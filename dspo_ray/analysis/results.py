"""Gather sweep results into one tidy pandas DataFrame, without Ray.

A sweep (``dspo_ray.distributed.sweep``) is a Tune experiment folder, local or on any pyarrow
filesystem (``s3://...``): one folder per trial holding ``params.json`` (the trial's config:
method, task, seed, group and the sampled ``params``), ``result.json`` (one JSON object per
report; the last is the trial's final state) and ``error.txt`` when the trial failed. We read those
files directly, so partial and interrupted sweeps load too, and several sweeps combine.

This is the one reader of sweep results: the sweep's own summary (``dspo_ray.distributed.sweep``)
and the tables (``analysis/make_tables.py``) both use it, so they cannot disagree about which
trials finished. A trial is *finished* when one of its reports carries the simulator evaluation
(normalised reward and cost), whichever scheduler ran it: ASHA ends an evaluated trial at its
``max_t`` rung, before the trial's closing report, so "the last report says completed" is not it.
A trial whose config ends it before evaluation (DSPO's ``stop_after``, e.g. Table 2's stage-1-only
runs) is ``stopped_as_configured`` once it reports completion: done, but not evaluated, so never in
Table 1.

Besides those, a trial reports *training rows* every ``log_every`` steps of its training (the
losses, with ``train/step``, the step within the stage named by ``stage``): the learning curves
read them (``reports``); the per-trial numbers never do. A trial whose policy was evaluated
reported it as a Tune checkpoint: ``policy`` is that file (``<trial>/checkpoint_.../policy.pt``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath

import pandas as pd

from dspo_ray.policies import POLICY_FILE
from dspo_ray.provenance import KEYS as PROVENANCE_KEYS
from dspo_ray.tasks import TASKS

REWARD = "eval/normalized_reward"
COST = "eval/normalized_cost"
OBJECTIVE = "objective"
STOPPED_AFTER = "run/stopped_after_stage"
"""Reported by a run that its config stopped after a stage (DSPO's ``stop_after``)."""
ORACLE = "diagnostic/oracle_signal"
"""1 on a DSPO run whose signal was the hidden truth (a diagnostic; never in Table 1)."""
ORACLE_WINDOWS = "diagnostic/oracle_windows"
"""1 on a DSPO run that cloned real truly-safe windows in place of generated ones (a diagnostic;
never in Table 1)."""
ORACLES = {ORACLE: "oracle signal", ORACLE_WINDOWS: "oracle windows"}
"""Each oracle diagnostic's marker metric and its name in tables."""
TRAINING_STEP = "train/step"
"""In every training row (and only there): the step within its stage."""
KEY_COLUMNS = ["sweep", "trial", "method", "task", "suite", "seed", "group", "status", "trial_id"]


class ResultsError(ValueError):
    """No results where the user pointed, or unreadable ones."""


def objective(normalized_reward: float, normalized_cost: float) -> float:
    """Maximise reward subject to cost <= 1, as one number (lexicographic).

    Safe (cost <= 1): the normalised reward. Unsafe: ``-cost`` (< -1), so every safe result with
    reward > -1 ranks above every unsafe one, and among unsafe results the less costly ranks
    higher -- which gives TPE a slope towards safety instead of a flat penalty plateau.
    """
    if normalized_cost is None or not math.isfinite(normalized_cost):
        return -math.inf
    if normalized_cost <= 1.0:
        return float(normalized_reward)
    return -float(normalized_cost)


def is_evaluated(report: dict) -> bool:
    """Whether a report carries the simulator evaluation (normalised reward and cost)."""
    return all(isinstance(report.get(k), (int, float)) and not isinstance(report.get(k), bool)
               for k in (REWARD, COST))


def is_training_row(report: dict) -> bool:
    """Whether a report is a training row (losses every ``log_every`` steps), not a stage's or
    the trial's result."""
    return report.get(TRAINING_STEP) is not None


def trial_status(reports: list[dict], errored: bool) -> str:
    """``finished`` (evaluated), ``stopped_as_configured`` (completed at the stage its config
    stopped it after, without evaluation), ``error`` (failed before evaluation) or ``incomplete``
    (stopped early by the scheduler, or interrupted). The one definition, for every scheduler."""
    if any(is_evaluated(r) for r in reports):
        return "finished"
    if any(r.get("completed") and isinstance(r.get(STOPPED_AFTER), (int, float)) for r in reports):
        return "stopped_as_configured"
    return "error" if errored else "incomplete"


def _filesystem(uri: str):
    import pyarrow.fs

    if "://" not in uri:
        from pathlib import Path

        uri = str(Path(uri).expanduser().resolve())
        return pyarrow.fs.LocalFileSystem(), uri
    return pyarrow.fs.FileSystem.from_uri(uri)


def _read_text(fs, path: str) -> str:
    with fs.open_input_stream(path) as f:
        return f.read().decode()


def find_trial_dirs(uri: str) -> list[tuple[object, str]]:
    """Every folder under ``uri`` that holds a ``params.json`` (a Tune trial), with its filesystem."""
    import pyarrow.fs

    fs, root = _filesystem(uri)
    info = fs.get_file_info(root)
    if info.type == pyarrow.fs.FileType.NotFound:
        raise ResultsError(f"{uri}: no such folder; pass the sweep's results folder (the one "
                           "experiments/sweep.py printed) or its parent")
    files = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True))
    return [(fs, str(PurePosixPath(f.path).parent)) for f in files
            if f.type == pyarrow.fs.FileType.File and PurePosixPath(f.path).name == "params.json"]


def _read_trial(fs, trial_dir: str) -> tuple[dict, list[dict]]:
    params = json.loads(_read_text(fs, f"{trial_dir}/params.json"))
    try:
        text = _read_text(fs, f"{trial_dir}/result.json")
    except (FileNotFoundError, OSError):
        text = ""
    reports = [json.loads(line) for line in text.splitlines() if line.strip()]
    return params, reports


def _policy_path(uri: str, trial_dir: str, reports: list[dict]) -> str | None:
    """The policy file of the trial's newest Tune checkpoint (a path, or a URI like ``uri``)."""
    names = [r["checkpoint_dir_name"] for r in reports if r.get("checkpoint_dir_name")]
    if not names:
        return None
    remote = "://" in uri and not uri.startswith("file://")
    scheme = uri.split("://", 1)[0] + "://" if remote else ""
    return f"{scheme}{trial_dir}/{names[-1]}/{POLICY_FILE}"


def _has_error(fs, trial_dir: str) -> bool:
    import pyarrow.fs

    return fs.get_file_info(f"{trial_dir}/error.txt").type == pyarrow.fs.FileType.File


def read_trials_csv(uri: str) -> pd.DataFrame:
    """The ``trials`` of a ``trials.csv`` that the tables wrote (``dspo-tables``): a committed
    one stands in for its sweeps' folders once those are gone. It holds no training rows."""
    fs, path = _filesystem(uri)
    try:
        with fs.open_input_stream(path) as f:
            # round_trip: the values as written, to the last digit (the default parser may
            # differ in the 16th, which moves what is computed from them, e.g. importances)
            trials = pd.read_csv(f, float_precision="round_trip")
    except (FileNotFoundError, OSError) as e:
        raise ResultsError(f"{uri}: cannot read it ({e}); pass a trials.csv written by "
                           "dspo-tables, or a sweep's results folder") from None
    missing = [c for c in ("method", "task", "seed", "status") if c not in trials]
    if missing:
        raise ResultsError(f"{uri}: not a trials.csv of dspo-tables (no column {missing[0]!r}); "
                           "pass the trials.csv that dspo-tables wrote, or a sweep's results folder")
    # a hand-made or older file may lack the bookkeeping columns: fill them as a folder would
    defaults = {"sweep": PurePosixPath(path).name, "trial": None, "trial_id": None,
                "group": trials["method"],
                "suite": [TASKS[t].suite if t in TASKS else "custom" for t in trials["task"]]}
    for column, value in defaults.items():
        if column not in trials:
            trials[column] = value
    return trials


SOURCES = "sources.txt"
"""In a committed results folder that gathers others' trials: one ``trials.csv`` per line,
relative to the folder, perhaps keeping some rows only (``../column_b_AntRun/trials.csv
method=dspo``; several: ``method=dspo,bc_safe``; the same with ``task=``); ``#`` starts a comment."""


def committed_trials(folder: str | Path) -> list[pd.DataFrame] | None:
    """The trials a committed results folder was made from, for :func:`load_results`: its own
    ``trials.csv`` (written by ``dspo-tables``) or the files its :data:`SOURCES` names, each kept
    to the rows its line says. None when the folder holds neither."""
    folder = Path(folder)
    if (folder / SOURCES).is_file():
        lines = [line.split() for line in (folder / SOURCES).read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
        return [_read_source(folder / path, filters, " ".join([path, *filters]))
                for path, *filters in lines]
    csv = folder / "trials.csv"
    if csv.is_file():
        header = csv.open().readline().strip().split(",")
        if all(c in header for c in ("method", "task", "seed", "status")):
            return [read_trials_csv(str(csv))]
    return None


def _read_source(path: Path, filters: list[str], line: str) -> pd.DataFrame:
    trials = read_trials_csv(str(path))
    for word in filters:
        key, _, value = word.partition("=")
        if key not in ("method", "task") or not value:
            raise ResultsError(f"{line!r} in a {SOURCES}: {word!r} is not a filter; write "
                               "'method=dspo' or 'task=AntRun,CarCircle' after the file")
        trials = trials[trials[key].isin(value.split(","))]
    return trials


def load_results(uris: str | list[str | pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All trials of one or more sweeps: ``(trials, reports)``. A ``uri`` ending in ``.csv`` is
    a ``trials.csv`` written by the tables (:func:`read_trials_csv`): its trials join the others,
    with no reports (so no learning curves); so do those of a DataFrame that function returned.

    ``trials``: one row per trial: sweep, trial, method, task, suite, seed, group, status
    (:func:`trial_status`), trial_id (Tune's), ``params/<key>`` for each sampled hyperparameter,
    and the numbers of its last evaluated report, or of its last report when none is evaluated
    (``eval/...``, ``discriminator/...``, ``time/...``, ``objective``, ``progress``; training
    rows aside), and ``policy``: its trained policy's file (None when it reported none).
    ``reports``: one row per report of every trial, training rows included (for learning
    curves), with ``trial``, ``group`` and ``report`` (its index).
    """
    uris = [uris] if isinstance(uris, str) else list(uris)
    rows, report_rows, tables = [], [], []
    for uri in uris:
        if isinstance(uri, pd.DataFrame):  # trials already read (read_trials_csv), e.g. filtered
            tables.append(uri)
            continue
        if uri.endswith(".csv"):
            tables.append(read_trials_csv(uri))
            continue
        trial_dirs = find_trial_dirs(uri)
        if not trial_dirs:
            raise ResultsError(f"{uri}: no trial folders (params.json) found; is this a sweep's "
                               "results folder?")
        for fs, trial_dir in trial_dirs:
            config, reports = _read_trial(fs, trial_dir)
            if "method" not in config or "task" not in config:
                continue  # a Ray Train run folder inside the sweep, not a Tune trial
            status = trial_status(reports, _has_error(fs, trial_dir))
            # the row's numbers: the last evaluated report if there is one, else the last report
            # that is not a training row
            evaluated = [r for r in reports if is_evaluated(r)]
            results = [r for r in reports if not is_training_row(r)]
            last = (evaluated or results or [{}])[-1]
            trial_name = PurePosixPath(trial_dir).name
            task = config["task"]
            row = {"sweep": PurePosixPath(trial_dir).parent.name, "trial": trial_name,
                   "method": config["method"], "task": task,
                   "suite": TASKS[task].suite if task in TASKS else "custom",
                   "seed": config.get("seed"), "group": config.get("group", config["method"]),
                   "status": status, "trial_id": last.get("trial_id"),
                   "policy": _policy_path(uri, trial_dir, reports)}
            row.update({f"params/{k}": v for k, v in (config.get("params") or {}).items()})
            row.update({k: v for k, v in last.items() if _is_metric(k, v)})
            rows.append(row)
            for i, rep in enumerate(reports):
                report_rows.append({"trial": trial_name, "method": config["method"], "task": task,
                                    "seed": config.get("seed"), "group": row["group"], "report": i,
                                    **{k: v for k, v in rep.items() if _is_metric(k, v)}})
    trials = pd.DataFrame(rows, columns=None if rows else KEY_COLUMNS)
    if tables:
        trials = pd.concat([t for t in [trials, *tables] if not t.empty] or [trials],
                           ignore_index=True)
    ordered = KEY_COLUMNS + sorted(c for c in trials.columns if c not in KEY_COLUMNS)
    trials = trials[ordered].sort_values(["method", "task", "group", "seed"]).reset_index(drop=True)
    check_one_dataset_per_task(trials)
    return trials, pd.DataFrame(report_rows)


_TUNE_BOOKKEEPING = {"done", "training_iteration", "trial_id", "date", "timestamp", "pid",
                     "hostname", "node_ip", "time_this_iter_s", "time_total_s",
                     "time_since_restore", "iterations_since_restore", "checkpoint_dir_name",
                     "should_checkpoint", "config", "method", "task", "seed", "group"}


def _is_metric(key: str, value) -> bool:
    if key in _TUNE_BOOKKEEPING:
        return False
    return isinstance(value, (int, float, bool)) or (
        isinstance(value, str) and (key == "stage" or key in PROVENANCE_KEYS))


def check_one_dataset_per_task(trials: pd.DataFrame,
                               fix: str = "make each dataset's tables apart (one --out per "
                                          "dataset, passing only its sweeps)") -> None:
    """A ResultsError when one task's trials name two datasets (``data/sha256``, written since
    2026-12-03): a rebuilt dataset is other data, and a table cell must not pool the two. Trials
    that name none (older results) are not checked. ``fix``: what the message tells to do."""
    if "data/sha256" not in trials:
        return
    named = trials.dropna(subset=["data/sha256"])
    for task, rows in named.groupby("task"):
        digests = rows.groupby("data/sha256")["sweep"].unique()
        if len(digests) > 1:
            which = "; ".join(f"{digest} in {', '.join(map(str, sweeps))}"
                              for digest, sweeps in digests.items())
            raise ResultsError(f"task {task}: the results come from {len(digests)} different "
                               f"datasets ({which}); {fix}")


def check_sources_share_dataset(sources: dict[str, pd.DataFrame], fix: str) -> list[str]:
    """Trials read from several sources for one comparison (a tuned sweep, its fresh-seed check,
    the column-(a) reference: ``label -> trials``) must name one dataset per task: a ResultsError
    (``check_one_dataset_per_task``) where they name two. Returns a note per source and task that
    names no dataset where another source names one (results older than 2026-12-03): unchecked,
    and a rebuilt dataset's older results are other data."""
    frames = [pd.DataFrame({"task": trials["task"].to_numpy(), "sweep": label,
                            "data/sha256": (trials["data/sha256"].to_numpy() if "data/sha256" in trials
                                            else None)})
              for label, trials in sources.items() if not trials.empty]
    if not frames:
        return []
    rows = pd.concat(frames, ignore_index=True)
    check_one_dataset_per_task(rows, fix)
    named = rows.dropna(subset=["data/sha256"]).groupby("task")["data/sha256"].first()
    return [f"{label} names no dataset for {task} (results older than 2026-12-03), the others "
            f"name {named[task]}: check that it ran on the same data"
            for (label, task), of_source in rows.groupby(["sweep", "task"])
            if task in named and of_source["data/sha256"].isna().all()]
