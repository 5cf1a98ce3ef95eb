"""Figures from sweep results: reward vs cost per task, learning curves, hyperparameter views."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from dspo_ray.analysis.results import COST, OBJECTIVE, REWARD, TRAINING_STEP


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: works on machines with no display
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def reward_cost_plots(trials: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Per task: normalised reward vs normalised cost of every finished trial, by method."""
    plt = _pyplot()
    if REWARD not in trials:  # no evaluated trial (e.g. a stage-1-only sweep)
        return []
    done = trials[(trials["status"] == "finished") & trials[REWARD].notna()]
    paths = []
    for task, t in done.groupby("task"):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for method, m in t.groupby("method"):
            ax.scatter(m[COST], m[REWARD], label=method, alpha=0.8, s=28)
        ax.axvline(1.0, color="red", linestyle="--", linewidth=1, label="cost limit")
        ax.set_xlabel("normalised cost")
        ax.set_ylabel("normalised reward")
        ax.set_title(f"{task}: every method and seed")
        ax.legend(fontsize=7, loc="best")
        paths.append(_save(fig, Path(out_dir) / f"reward_vs_cost_{task}.png"))
        plt.close(fig)
    return paths


CURVE_PREFIXES = ("losses/", "stage1/", "eval/")
"""The training scalars drawn as learning curves."""


def learning_curves(reports: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """Per task, one row of panels per method: each of the method's training scalars
    (``losses/...``, ``stage1/...``, ``eval/...``) against its training step, one line per trial
    (configuration and seed), from the trials' training rows (each metric belongs to one training
    stage, whose steps are its x axis)."""
    plt = _pyplot()
    if reports.empty or TRAINING_STEP not in reports:
        return []
    rows = reports[reports[TRAINING_STEP].notna()]
    metrics = [c for c in rows.columns if c.startswith(CURVE_PREFIXES)]
    paths = []
    for task, t in rows.groupby("task"):
        panels = {}  # method -> (its rows, its metrics with a curve: some trial has > 1 point)
        for method, tm in t.groupby("method", sort=True):
            counts = tm[metrics].notna().groupby(tm["trial"]).sum().max()
            present = [m for m in metrics if counts[m] > 1]
            if present:
                panels[method] = (tm, present)
        if not panels:
            continue
        ncols = max(len(p) for _, p in panels.values())
        fig, axes = plt.subplots(len(panels), ncols, figsize=(3.6 * ncols, 2.8 * len(panels)),
                                 squeeze=False)
        for row, (method, (tm, present)) in enumerate(panels.items()):
            for col, ax in enumerate(axes[row]):
                if col >= len(present):
                    ax.axis("off")
                    continue
                metric = present[col]
                for trial, tr in tm.groupby("trial"):
                    tr = tr[tr[metric].notna()].sort_values("report")
                    if len(tr):  # the group names the configuration (<method>/<task>/<k>)
                        ax.plot(tr[TRAINING_STEP], tr[metric], marker=".", alpha=0.7,
                                label=f"{tr['group'].iloc[0]} s{tr['seed'].iloc[0]}")
                ax.set_title(f"{method}: {metric}", fontsize=8)
                ax.set_xlabel("training step", fontsize=7)
                ax.tick_params(labelsize=6)
            handles, labels = axes[row][0].get_legend_handles_labels()
            if handles and len(handles) <= 12:
                axes[row][0].legend(fontsize=5)
        fig.suptitle(f"{task}: learning curves (one row per method, one line per trial)")
        fig.tight_layout()
        paths.append(_save(fig, Path(out_dir) / f"learning_curves_{task}.png"))
        plt.close(fig)
    return paths


def swept_parameters(trials: pd.DataFrame) -> list[str]:
    return [c for c in trials.columns
            if c.startswith("params/") and trials[c].dropna().astype(str).nunique() > 1]


def parameter_importances(trials: pd.DataFrame, method: str | None = None) -> pd.DataFrame:
    """Optuna's fANOVA-style importances of the swept parameters for the objective, per
    (method, task): each is its own search, with its own parameters and objective scale, so
    importances are never pooled across methods or tasks.

    Columns: method, task, parameter, importance. The finished trials are replayed into an
    in-memory Optuna study (so this works from the results alone, whatever storage the sweep
    used). A cell needs at least 2 finished trials and one swept parameter.
    """
    columns = ["method", "task", "parameter", "importance"]
    if OBJECTIVE not in trials:  # no evaluated trial (e.g. a stage-1-only sweep)
        return pd.DataFrame(columns=columns)
    done = trials[(trials["status"] == "finished") & trials[OBJECTIVE].notna()]
    if method is not None:
        done = done[done["method"] == method]
    done = done[np.isfinite(done[OBJECTIVE].astype(float))]
    cells = [_cell_importances(cell).assign(method=m, task=t)
             for (m, t), cell in done.groupby(["method", "task"], sort=True)]
    cells = [c for c in cells if not c.empty]
    return pd.concat(cells, ignore_index=True)[columns] if cells else pd.DataFrame(columns=columns)


def _cell_importances(done: pd.DataFrame) -> pd.DataFrame:
    """:func:`parameter_importances` of one (method, task)'s finished trials."""
    import optuna

    params = swept_parameters(done)
    if len(done) < 2 or not params:
        return pd.DataFrame(columns=["parameter", "importance"])
    distributions = {}
    for p in params:
        values = done[p].dropna()
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            distributions[p] = optuna.distributions.FloatDistribution(float(values.min()), float(values.max()))
        else:
            distributions[p] = optuna.distributions.CategoricalDistribution(
                sorted(values.astype(str).unique()))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for _, row in done.iterrows():
        values = {}
        for p, d in distributions.items():
            if pd.isna(row[p]):
                break
            values[p] = str(row[p]) if isinstance(d, optuna.distributions.CategoricalDistribution) else float(row[p])
        else:
            study.add_trial(optuna.trial.create_trial(params=values, distributions=distributions,
                                                      value=float(row[OBJECTIVE])))
    if len(study.trials) < 2:
        return pd.DataFrame(columns=["parameter", "importance"])
    importances = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    return pd.DataFrame({"parameter": list(importances), "importance": list(importances.values())})


def hyperparameter_plots(trials: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """For each swept parameter: the objective of every finished trial against its value."""
    plt = _pyplot()
    if OBJECTIVE not in trials:  # no evaluated trial (e.g. a stage-1-only sweep)
        return []
    done = trials[(trials["status"] == "finished") & trials[OBJECTIVE].notna()]
    paths = []
    for p in swept_parameters(done):
        fig, ax = plt.subplots(figsize=(4.5, 3.5))
        for method, m in done.groupby("method"):
            m = m[m[p].notna()]
            x = m[p]
            if not pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
                x = x.astype(str)
            ax.scatter(x, m[OBJECTIVE], label=method, alpha=0.8, s=24)
        ax.set_xlabel(p[len("params/"):])
        ax.set_ylabel("objective (safe: reward; unsafe: -cost)")
        ax.legend(fontsize=7)
        name = p[len("params/"):].replace("/", "_").replace(".", "_")
        paths.append(_save(fig, Path(out_dir) / f"hparam_{name}.png"))
        plt.close(fig)
    return paths
