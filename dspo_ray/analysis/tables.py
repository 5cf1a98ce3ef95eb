"""The paper's tables from a trials DataFrame (``dspo_ray.analysis.results.load_results``).

Table 1: per task and method, normalised reward mean +- std over seeds, for the configuration the
sweep's objective chose (best mean objective over seeds). A cell is *safe* when the mean normalised
cost over its seeds is <= 1. Ranking (the paper's rule): a safe result outranks an unsafe one; then
the higher reward ranks higher. Average ranks are taken per suite over the tasks a method has.

Table 2: discriminator metrics of the ablation variants (DSPO trials only).
Partial results are never averaged away silently: a cell says how many seeds it holds out of how
many the sweep ran, and how many trials failed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from dspo_ray.analysis.results import COST, OBJECTIVE, REWARD, objective
from dspo_ray.tasks import SUITES, TASKS

FORMATS = ("md", "latex", "html", "csv")
DISCRIMINATOR_METRICS = {"discriminator/recall": "Recall", "discriminator/accuracy": "Accuracy",
                         "discriminator/f1": "F1 Score", "discriminator/pearson": "Pearson Corr."}


def choose_configurations(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, task): the chosen group's seeds aggregated.

    Columns: method, task, suite, group, reward_mean, reward_std, cost_mean, cost_std, seeds
    (finished), seeds_expected, failed, safe, objective (the group's mean), config (the group's
    sampled hyperparameters as JSON).
    """
    trials = trials.copy()
    for column in (REWARD, COST, OBJECTIVE):  # a sweep where no trial was evaluated yet
        if column not in trials:
            trials[column] = np.nan
    param_cols = [c for c in trials.columns if c.startswith("params/")]
    out = []
    for (method, task), cell in trials.groupby(["method", "task"], sort=True):
        expected = cell["seed"].nunique()
        failed = int((cell["status"] == "error").sum())
        done = cell[(cell["status"] == "finished") & cell[REWARD].notna() & cell[COST].notna()].copy()
        base = {"method": method, "task": task, "suite": cell["suite"].iloc[0],
                "seeds_expected": expected, "failed": failed}
        if done.empty:
            out.append({**base, "group": None, "reward_mean": np.nan, "reward_std": np.nan,
                        "cost_mean": np.nan, "cost_std": np.nan, "seeds": 0, "safe": False,
                        "objective": np.nan, "config": None})
            continue
        if OBJECTIVE not in done or done[OBJECTIVE].isna().any():
            done[OBJECTIVE] = [objective(r, c) for r, c in zip(done[REWARD], done[COST])]
        by_group = done.groupby("group").agg(objective=(OBJECTIVE, "mean"), seeds=("seed", "nunique"))
        group = by_group.sort_values(["objective", "seeds"], ascending=False).index[0]
        g = done[done["group"] == group]
        cost = float(g[COST].mean())
        params = {c[len("params/"):]: _plain(g[c].iloc[0]) for c in param_cols
                  if pd.notna(g[c].iloc[0])}
        out.append({**base, "group": group, "reward_mean": float(g[REWARD].mean()),
                    "reward_std": float(g[REWARD].std(ddof=0)), "cost_mean": cost,
                    "cost_std": float(g[COST].std(ddof=0)),
                    "seeds": int(g["seed"].nunique()), "safe": bool(cost <= 1.0),
                    "objective": float(by_group.loc[group, "objective"]),
                    "config": json.dumps(params, default=str)})
    return pd.DataFrame(out)


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def rank_methods(cells: pd.DataFrame) -> pd.DataFrame:
    """Add ``rank`` per task: safe before unsafe, then higher reward; 1 is best."""
    cells = cells.copy()
    cells["rank"] = np.nan
    for task, idx in cells.groupby("task").groups.items():
        c = cells.loc[idx]
        c = c[c["seeds"] > 0]
        order = c.sort_values(["safe", "reward_mean"], ascending=[False, False]).index
        cells.loc[order, "rank"] = np.arange(1, len(order) + 1)
    return cells


def average_ranks(cells: pd.DataFrame) -> pd.DataFrame:
    """Suite x method: mean rank over the suite's tasks that the method has results for."""
    ranked = cells if "rank" in cells else rank_methods(cells)
    return ranked.pivot_table(index="suite", columns="method", values="rank", aggfunc="mean")


def _task_order(tasks) -> list[str]:
    known = [t for t in TASKS if t in set(tasks)]
    return known + sorted(set(tasks) - set(known))


def _method_order(methods) -> list[str]:
    paper = ["bc_all", "bc_safe", "td3bc", "iql", "cql", "dwbc", "rgm", "cdtv", "dspo"]
    return [m for m in paper if m in set(methods)] + sorted(set(methods) - set(paper))


def table1(trials: pd.DataFrame, fmt: str = "md") -> str:
    """Table 1 rendered as Markdown, LaTeX, HTML or CSV."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    cells = rank_methods(choose_configurations(trials))
    if fmt == "csv":
        return cells.to_csv(index=False)
    methods = _method_order(cells["method"].unique())
    best = {}
    for task, c in cells[cells["safe"] & (cells["seeds"] > 0)].groupby("task"):
        best[task] = c.loc[c["reward_mean"].idxmax(), "method"]
    ranks = average_ranks(cells)

    def render(row) -> str:
        if row is None:
            return _fmt_missing(fmt)
        if row["seeds"] == 0:
            return _fmt_text(fmt, f"no result ({row['failed']} failed)")
        text = (f"{row['reward_mean']:.2f} ± {row['reward_std']:.2f} / "
                f"{row['cost_mean']:.2f} ± {row['cost_std']:.2f}")
        notes = []
        if row["seeds"] < row["seeds_expected"]:
            notes.append(f"{row['seeds']}/{row['seeds_expected']} seeds")
        if row["failed"]:
            notes.append(f"{row['failed']} failed")
        return _fmt_cell(fmt, text, safe=row["safe"], best=best.get(row["task"]) == row["method"],
                         notes=notes, cost=row["cost_mean"])

    lookup = {(r["task"], r["method"]): r for _, r in cells.iterrows()}
    body: list[list[str]] = []
    for suite in [s for s in SUITES if s in set(cells["suite"])] + sorted(
            set(cells["suite"]) - set(SUITES)):
        suite_tasks = _task_order(cells.loc[cells["suite"] == suite, "task"].unique())
        for task in suite_tasks:
            body.append([task, *[render(lookup.get((task, m))) for m in methods]])
        avg = ranks.loc[suite] if suite in ranks.index else pd.Series(dtype=float)
        body.append([f"{suite} average rank",
                     *[_fmt_text(fmt, f"{avg[m]:.2f}" if m in avg and pd.notna(avg[m]) else "-")
                       for m in methods]])
    return _render_table(fmt, ["Task", *methods], body, caption=(
        "Normalised reward / normalised cost (mean ± std over seeds). Safe results (mean normalised cost <= 1) "
        "are bold; unsafe ones are grey (flagged 'unsafe' in Markdown); the best safe result "
        "of each task is blue (★ in Markdown). Ranks: safe above unsafe, then higher reward."))


def table2(trials: pd.DataFrame, fmt: str = "md") -> str:
    """Discriminator metrics per ablation variant (DSPO trials), mean over trials."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    dspo = trials[(trials["method"] == "dspo") & (trials["status"] == "finished")].copy()
    metrics = [m for m in DISCRIMINATOR_METRICS if m in dspo]
    if dspo.empty or not metrics:
        return _render_table(fmt, ["Variant"], [[_fmt_text(fmt, "no finished DSPO trial with discriminator metrics")]])
    dspo["variant"] = dspo.apply(ablation_variant, axis=1)
    agg = dspo.groupby("variant")[metrics + [REWARD, COST]].mean()
    agg["trials"] = dspo.groupby("variant").size()
    if fmt == "csv":
        return agg.reset_index().to_csv(index=False)
    best = {m: agg[m].max() for m in metrics}
    body = []
    for variant, r in agg.iterrows():
        cells = [_fmt_cell(fmt, f"{r[m]:.3f}", safe=bool(np.isclose(r[m], best[m])), best=False,
                           notes=[], cost=None) for m in metrics]
        score = _fmt_cell(fmt, f"{r[REWARD]:.2f}", safe=bool(r[COST] <= 1), best=False, notes=[],
                          cost=r[COST])
        body.append([variant, *cells, score, _fmt_text(fmt, str(int(r["trials"])))])
    return _render_table(fmt, ["Variant", *[DISCRIMINATOR_METRICS[m] for m in metrics],
                               "Final Score", "Trials"], body, caption=(
        "Discriminator metrics against the hidden truth (best per column in bold); Final Score is "
        "the normalised reward, grey when unsafe."))


def ablation_variant(row: pd.Series) -> str:
    """The Table 2 / Figure 4 name of a DSPO trial's discriminator configuration."""
    def param(key, default):
        v = row.get(f"params/discriminator.{key}", default)
        return default if v is None or (isinstance(v, float) and math.isnan(v)) else v

    if param("variant", "safety_transformer") == "mlp":
        base = "MLP discriminator"
    else:
        base = "SafetyTransformer"
    if bool(param("return_agnostic", True)):
        return f"{base} (return-agnostic)"
    return f"{base} w/o return-agnostic" + (", w/ gp" if float(param("gradient_penalty", 0.0)) > 0 else "")


# --------------------------------------------------------------------------------- rendering

def _fmt_missing(fmt: str) -> str:
    return {"md": "–", "latex": "--", "html": "&ndash;"}[fmt]


def _fmt_text(fmt: str, text: str) -> str:
    return _escape(fmt, text)


def _escape(fmt: str, text: str) -> str:
    if fmt == "latex":
        return text.replace("±", r"$\pm$").replace("_", r"\_").replace("%", r"\%")
    if fmt == "html":
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text


def _fmt_cell(fmt: str, text: str, safe: bool, best: bool, notes: list[str], cost) -> str:
    note = f" ({', '.join(notes)})" if notes else ""
    title = f"normalised cost {cost:.2f}" if cost is not None else ""
    if fmt == "md":
        if best:
            return f"**{text}** ★{note}"
        return (f"**{text}**{note}" if safe else f"{text} ⚠unsafe{note}")
    if fmt == "latex":
        t = _escape(fmt, text)
        n = _escape(fmt, note)
        if best:
            return rf"\textcolor{{blue}}{{\textbf{{{t}}}}}{n}"
        return rf"\textbf{{{t}}}{n}" if safe else rf"\textcolor{{gray}}{{{t}}}{n}"
    t = _escape(fmt, text)
    n = _escape(fmt, note)
    if best:
        return f'<b style="color:blue" title="{title}">{t}</b>{n}'
    return (f'<b title="{title}">{t}</b>{n}' if safe
            else f'<span style="color:gray" title="{title} (unsafe)">{t}</span>{n}')


def _render_table(fmt: str, header: list[str], body: list[list[str]], caption: str = "") -> str:
    header = [_escape(fmt, h) for h in header]
    if fmt == "md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines + ([f"\n{caption}"] if caption else [])) + "\n"
    if fmt == "latex":
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 r"\begin{tabular}{l" + "c" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        lines += [" & ".join(r) + r" \\" for r in body]
        lines += [r"\bottomrule", r"\end{tabular}"]
        if caption:
            lines.append(r"\caption{" + _escape(fmt, caption) + "}")
        lines.append(r"\end{table}")
        return "\n".join(lines) + "\n"
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body]
    cap = f"<caption>{_escape(fmt, caption)}</caption>" if caption else ""
    return f"<table>{cap}\n" + "\n".join(rows) + "\n</table>\n"
