"""The paper's tables from a trials DataFrame (``dspo_ray.analysis.results.load_results``).

Table 1: per task and method, normalised reward mean +- std over seeds, for the configuration the
sweep's objective chose (best mean objective over seeds). A cell is *safe* when the mean normalised
cost over its seeds is <= 1. Ranking (the paper's rule): a safe result outranks an unsafe one; then
the higher reward ranks higher. Average ranks are taken per suite over the tasks a method has.

Table 2, per task (never pooled across tasks): every stage-1 variant a row (SafetyTransformer +
return-agnostic, w/o return-agnostic, w/o + gradient penalty, MLP backbone) with its AUROC and
average precision against the hidden truth first, then the threshold metrics, mean ± std over
seeds; the negative-return rule as its own row beside them. It reads evaluated DSPO trials and
stage-1-only ones (``stop_after``) alike.

Oracle table: DSPO with its learned signal vs DSPO with the oracle signal (the hidden truth, an
upper bound: ``stage1_oracle``) vs BC-Safe, per task. Oracle runs appear only there: Table 1 and
the sweep's choice of configurations leave them out.
Partial results are never averaged away silently: a cell says how many seeds it holds out of how
many the sweep ran, and how many trials failed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from dspo_ray.analysis.results import COST, OBJECTIVE, ORACLES, REWARD, objective
from dspo_ray.provenance import KEYS as PROVENANCE_KEYS
from dspo_ray.tasks import SUITES, TASKS

FORMATS = ("md", "latex", "html", "csv")
# Table 2's columns: the ranking metrics first, then the paper's threshold metrics (at 0.5 and at
# the paper's rule, threshold = the smallest signal of a demonstration), then the label-free one
DISCRIMINATOR_METRICS = {
    "discriminator/auroc": "AUROC", "discriminator/auroc_at_equal_return": "AUROC at equal return",
    "discriminator/average_precision": "Avg. Precision",
    "discriminator/pearson": "Pearson Corr.",
    "discriminator/recall": "Recall", "discriminator/precision": "Precision",
    "discriminator/accuracy": "Accuracy", "discriminator/f1": "F1 Score",
    "discriminator/recall@demo_min": "Recall (demo-min)", "discriminator/f1@demo_min": "F1 (demo-min)",
    "stage1/signal_return_corr": "Signal-return corr. (label-free)",
    "stage1/heldout_demo_auroc": "Held-out demo AUROC (label-free)",
    "stage1/heldout_demo_auroc_return_matched": "Held-out demo AUROC, return-matched (label-free)"}
NEG_RETURN_METRICS = {"neg_return/auroc": "discriminator/auroc",
                      "neg_return/auroc_at_equal_return": "discriminator/auroc_at_equal_return",
                      "neg_return/average_precision": "discriminator/average_precision",
                      "neg_return/pearson": "discriminator/pearson"}
"""The negative-return rule's metrics, and the Table 2 column each goes in."""
SAFE_SHARE = "discriminator/unlabelled_safe_fraction"
"""Share of truly safe trajectories among the unlabelled: the average precision of a random score."""
NEG_RETURN_ROW = "Negative return (score = -return)"
VARIANT_ORDER = ["SafetyTransformer + return-agnostic (ours)", "w/o return-agnostic",
                 "w/o return-agnostic, w/ gp", "MLP backbone (return-agnostic)",
                 "MLP backbone w/o return-agnostic", "MLP backbone w/o return-agnostic, w/ gp"]


def is_oracle(trials: pd.DataFrame, marker: str | None = None) -> pd.Series:
    """Rows of oracle runs: whose signal was the hidden truth (``stage1_oracle``) or whose
    generated windows were real truly-safe ones (``stage2_oracle``); ``marker`` (a key of
    ``ORACLES``): that oracle only."""
    found = pd.Series(False, index=trials.index)
    for column in [marker] if marker else ORACLES:
        if column in trials:
            found |= trials[column].fillna(0).astype(float) == 1
    return found


def oracle_names(trials: pd.DataFrame) -> pd.Series:
    """Each row's oracles by name (``oracle signal``, ``oracle windows``, both joined by ``+``);
    empty for a learned run."""
    names = pd.Series("", index=trials.index)
    for column, name in ORACLES.items():
        mark = is_oracle(trials, column)
        names[mark] = names[mark].where(names[mark] == "", names[mark] + " + ") + name
    return names


def as_learned(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with the oracle markers cleared, so the choosing code takes them as candidates."""
    return trials.assign(**{column: 0 for column in ORACLES if column in trials})


TUNED_SUFFIX = " (tuned on eval)"
"""Appended to a method whose sweep ran several configurations of it on a task: the table shows
the one with the best simulator evaluation, a choice that sees the simulator's costs."""


def label_tuned(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with :data:`TUNED_SUFFIX` appended to the method of every (sweep, method) that
    holds more than one configuration (group) on some task. Such a cell's result is chosen on the
    simulator's evaluation, which sees costs, so the table says so; and a tuned sweep combined with
    a fixed one (one configuration per task, e.g. Table 1's column (a)) gets its own column."""
    trials = trials.copy()
    if trials.empty:
        return trials
    sweep = trials["sweep"] if "sweep" in trials else pd.Series("", index=trials.index)
    configurations = trials.groupby([sweep.rename("_sweep"), "method", "task"])["group"].nunique()
    tuned = {(s, m) for (s, m, _), n in configurations.items() if n > 1}
    trials["method"] = [m + TUNED_SUFFIX if (s, m) in tuned else m
                        for s, m in zip(sweep, trials["method"])]
    return trials


def choose_configurations(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, task): the chosen group's seeds aggregated. A method with several
    configurations on a task in its sweep is named ``<method> (tuned on eval)`` (:func:`label_tuned`).

    Columns: method, task, suite, group, reward_mean, reward_std, cost_mean, cost_std, seeds
    (finished), seeds_expected, failed, safe, objective (the group's mean), config (the group's
    sampled hyperparameters as JSON), policy (the policy file of the chosen group's best seed by
    objective; None when no trial reported one).
    """
    trials = label_tuned(trials[~is_oracle(trials)])  # an oracle run is a diagnostic, never a candidate
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
                        "objective": np.nan, "config": None, "policy": None})
            continue
        if OBJECTIVE not in done or done[OBJECTIVE].isna().any():
            done[OBJECTIVE] = [objective(r, c) for r, c in zip(done[REWARD], done[COST])]
        by_group = done.groupby("group").agg(objective=(OBJECTIVE, "mean"), seeds=("seed", "nunique"))
        group = by_group.sort_values(["objective", "seeds"], ascending=False).index[0]
        g = done[done["group"] == group]
        cost = float(g[COST].mean())
        params = {c[len("params/"):]: _plain(g[c].iloc[0]) for c in param_cols
                  if pd.notna(g[c].iloc[0])}
        with_policy = g[g["policy"].notna()] if "policy" in g else g.iloc[:0]
        policy = (with_policy.sort_values(OBJECTIVE, ascending=False)["policy"].iloc[0]
                  if not with_policy.empty else None)
        out.append({**base, "group": group, "reward_mean": float(g[REWARD].mean()),
                    "reward_std": float(g[REWARD].std(ddof=0)), "cost_mean": cost,
                    "cost_std": float(g[COST].std(ddof=0)),
                    "seeds": int(g["seed"].nunique()), "safe": bool(cost <= 1.0),
                    "objective": float(by_group.loc[group, "objective"]),
                    "config": json.dumps(params, default=str), "policy": policy})
    return pd.DataFrame(out)


def sweep_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """The sweep's per-(method, task) summary: :func:`choose_configurations`, plus, when the
    sweep holds oracle runs (a diagnostic), their own rows as method ``dspo (oracle signal)``
    (or ``(oracle windows)``), so an oracle sweep's summary shows them without them competing
    with learned runs."""
    summary = choose_configurations(trials)
    oracle = is_oracle(trials)
    if oracle.any():
        rows = as_learned(trials[oracle])
        rows["method"] = rows["method"] + " (" + oracle_names(trials[oracle]) + ")"
        summary = pd.concat([summary, choose_configurations(rows)], ignore_index=True)
        # a cell whose trials are all oracle runs has no learned result: drop its empty row
        learned = set(zip(label_tuned(trials[~oracle])["method"], trials.loc[~oracle, "task"]))
        summary = summary[[(m, t) in learned or " (oracle " in m
                           for m, t in zip(summary["method"], summary["task"])]]
    return summary.reset_index(drop=True)


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
    label = _task_labels(cells)
    body: list[list[str]] = []
    for suite in [s for s in SUITES if s in set(cells["suite"])] + sorted(
            set(cells["suite"]) - set(SUITES)):
        suite_tasks = _task_order(cells.loc[cells["suite"] == suite, "task"].unique())
        for task in suite_tasks:
            body.append([label[task], *[render(lookup.get((task, m))) for m in methods]])
        avg = ranks.loc[suite] if suite in ranks.index else pd.Series(dtype=float)
        body.append([f"{suite} average rank",
                     *[_fmt_text(fmt, f"{avg[m]:.2f}" if m in avg and pd.notna(avg[m]) else "-")
                       for m in methods]])
    return _render_table(fmt, ["Task", *methods], body, caption=(
        "Normalised reward / normalised cost (mean ± std over seeds). Safe results (mean normalised cost <= 1) "
        "are bold; unsafe ones are grey (flagged 'unsafe' in Markdown); the best safe result "
        "of each task is blue (★ in Markdown). Ranks: safe above unsafe, then higher reward. "
        f"A method marked '{TUNED_SUFFIX.strip()}' is the best of several configurations by the "
        "simulator's evaluation, a choice that sees the simulator's costs."))


def _task_labels(cells: pd.DataFrame) -> dict[str, str]:
    """Task -> its row's label. Tasks run on different numbers of seeds (e.g. more seeds where
    the data ship) each name their number, so that no reader compares a 5-seed mean with a
    3-seed one unawares; when all ran the same number, the label is the task."""
    task_seeds = cells.groupby("task")["seeds_expected"].max()
    if task_seeds.nunique() > 1:
        return {t: f"{t} ({n} seeds)" for t, n in task_seeds.items()}
    return {t: t for t in task_seeds.index}


def _mean_std(values: pd.Series) -> tuple[float, float, int]:
    v = pd.to_numeric(values, errors="coerce").dropna()
    if v.empty:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=0)), int(len(v))


def stage1_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 2's rows as data: per task, each variant's (and the negative-return rule's) metrics,
    mean and std over its trials (seeds). Columns: task, row, trials, and ``<metric>`` /
    ``<metric> std`` for each metric of DISCRIMINATOR_METRICS (the negative-return rule's under
    the matching discriminator columns), plus the final score where evaluated."""
    ok = trials["status"].isin(["finished", "stopped_as_configured"])
    dspo = trials[(trials["method"] == "dspo") & ok & ~is_oracle(trials)].copy()
    if dspo.empty or "discriminator/auroc" not in dspo and "discriminator/recall" not in dspo:
        return pd.DataFrame()
    dspo["variant"] = dspo.apply(ablation_variant, axis=1)
    rows = []
    for task in _task_order(dspo["task"].unique()):
        t = dspo[dspo["task"] == task]
        variants = [v for v in VARIANT_ORDER if v in set(t["variant"])]
        variants += sorted(set(t["variant"]) - set(variants))
        for variant in variants:
            g = t[t["variant"] == variant]
            row = {"task": task, "row": variant, "trials": len(g), "seeds": g["seed"].nunique()}
            for m in list(DISCRIMINATOR_METRICS) + [SAFE_SHARE, REWARD, COST]:
                mean, std, _ = _mean_std(g[m]) if m in g else (math.nan, math.nan, 0)
                row[m], row[f"{m} std"] = mean, std
            rows.append(row)
        present = [m for m in [*NEG_RETURN_METRICS, SAFE_SHARE] if m in t]
        if present:
            # the rule needs no training: one value per seed's split (variants agree)
            per_seed = t.groupby("seed")[present].mean()
            row = {"task": task, "row": NEG_RETURN_ROW, "trials": len(per_seed),
                   "seeds": len(per_seed)}
            for m, column in [*NEG_RETURN_METRICS.items(), (SAFE_SHARE, SAFE_SHARE)]:
                mean, std, _ = _mean_std(per_seed[m]) if m in per_seed else (math.nan, math.nan, 0)
                row[column], row[f"{column} std"] = mean, std
            rows.append(row)
    return pd.DataFrame(rows)


def table2(trials: pd.DataFrame, fmt: str = "md") -> str:
    """Stage-1 metrics per task: every variant a row, the negative-return rule beside them."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    frame = stage1_frame(trials)
    if frame.empty:
        return _render_table(fmt, ["Variant"], [[_fmt_text(fmt, "no DSPO trial with stage-1 metrics")]])
    if fmt == "csv":
        return frame.to_csv(index=False)
    metrics = [m for m in DISCRIMINATOR_METRICS if frame[m].notna().any()]
    scored = frame[REWARD].notna().any()
    share = frame[SAFE_SHARE].notna().any()
    body = []
    for task in frame["task"].unique():
        f = frame[frame["task"] == task]
        best = {m: f[m].max() for m in metrics}
        for _, r in f.iterrows():
            cells = []
            for m in metrics:
                if pd.isna(r[m]):
                    cells.append(_fmt_missing(fmt))
                    continue
                cells.append(_fmt_bold(fmt, f"{r[m]:.3f} ± {r[m + ' std']:.3f}",
                                       bool(np.isclose(r[m], best[m]))))
            if share:
                cells.append(_fmt_missing(fmt) if pd.isna(r[SAFE_SHARE])
                             else _fmt_text(fmt, f"{r[SAFE_SHARE]:.3f}"))
            if scored:
                cells.append(_fmt_missing(fmt) if pd.isna(r[REWARD]) else _fmt_cell(
                    fmt, f"{r[REWARD]:.2f} / {r[COST]:.2f}", safe=bool(r[COST] <= 1), best=False,
                    notes=[], cost=r[COST]))
            body.append([_fmt_text(fmt, task), _fmt_text(fmt, r["row"]), *cells,
                         _fmt_text(fmt, str(int(r["seeds"])))])
    header = ["Task", "Stage-1 signal", *[DISCRIMINATOR_METRICS[m] for m in metrics]]
    header += (["Safe share (chance AP)"] if share else [])
    header += (["Final score (reward / cost)"] if scored else []) + ["Seeds"]
    return _render_table(fmt, header, body, caption=(
        "Stage 1 per task, mean ± std over seeds: how well each discriminator variant's signal "
        "(and the negative-return rule, which needs no training) separates the truly safe "
        "unlabelled trajectories from the unsafe ones, measured against the hidden cost labels "
        "(reported, never used for training or selection). Thresholds: 0.5, and demo-min (the "
        "paper's rule: the smallest signal given to a demonstration). The held-out demo AUROCs are "
        "label-free (from the learner's data alone); the sweeps' ASHA selects on the first. Best "
        "per task and column in bold."))


def oracle_table(trials: pd.DataFrame, fmt: str = "md") -> str | None:
    """DSPO (learned signal) vs DSPO with each oracle it ran with (the oracle signal; real
    truly-safe windows for its generated ones: upper bounds) vs BC-Safe, per task; None when no
    oracle run is in ``trials``. Each cell: the chosen configuration (best mean objective)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    oracle = is_oracle(trials)
    if not oracle.any():
        return None
    dspo = trials["method"] == "dspo"
    names = oracle_names(trials)
    columns = {"DSPO (learned)": choose_configurations(trials[dspo & ~oracle])}
    for name in dict.fromkeys(names[dspo & oracle]):  # each kind of oracle run, in order
        columns[f"DSPO ({name}, upper bound)"] = choose_configurations(
            as_learned(trials[dspo & (names == name)]))
    columns["BC-Safe"] = choose_configurations(trials[trials["method"] == "bc_safe"])
    if fmt == "csv":
        return pd.concat([c.assign(column=name) for name, c in columns.items()]).to_csv(index=False)
    tasks = _task_order(trials.loc[oracle, "task"].unique())
    label = _task_labels(pd.concat([c[c["task"].isin(tasks)] for c in columns.values()
                                    if not c.empty]))
    body = []
    for task in tasks:
        cells = []
        for name, c in columns.items():
            row = c[c["task"] == task] if not c.empty else c
            if row.empty or int(row["seeds"].iloc[0]) == 0:
                cells.append(_fmt_missing(fmt))
                continue
            r = row.iloc[0]
            cells.append(_fmt_cell(fmt, f"{r['reward_mean']:.2f} ± {r['reward_std']:.2f} / "
                                        f"{r['cost_mean']:.2f} ± {r['cost_std']:.2f}",
                                   safe=bool(r["safe"]), best=False,
                                   notes=[f"{r['seeds']}/{r['seeds_expected']} seeds"]
                                   if r["seeds"] < r["seeds_expected"] else [],
                                   cost=r["cost_mean"]))
        body.append([_fmt_text(fmt, label[task]), *cells])
    return _render_table(fmt, ["Task", *columns], body, caption=(
        "Diagnostic, not Table 1: DSPO with its learned stage-1 signal, "
        + ("DSPO with the hidden truth as its signal (an upper bound on what a better stage 1 can "
           "give the rest of DSPO), " if any("oracle signal" in c for c in columns) else "")
        + ("DSPO cloning real windows of truly safe unlabelled trajectories in place of its "
           "generated ones (oracle windows: what a perfect stage 2 can give behaviour cloning), "
           if any("oracle windows" in c for c in columns) else "")
        + "and BC-Safe. Normalised reward / cost, mean ± std over seeds; safe (cost <= 1) in bold."))


def provenance_table(trials: pd.DataFrame, fmt: str = "md") -> str:
    """Which dataset (by content digest) and which kind of machine made the trials, per task:
    one row per (task, dataset, CPU, kernel level, torch) with its number of trials. Trials made
    before results recorded this (2026-12-03) say "not recorded"."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    keys = list(PROVENANCE_KEYS)
    frame = trials.reindex(columns=["task", *keys]).astype(object)
    frame[keys] = frame[keys].where(frame[keys].notna(), "not recorded")
    counts = frame.groupby(["task", *keys], sort=False).size().rename("trials").reset_index()
    counts["order"] = counts["task"].map({t: i for i, t in enumerate(_task_order(counts["task"].unique()))})
    counts = counts.sort_values(["order", "data/sha256"]).drop(columns="order")
    if fmt == "csv":
        return counts.to_csv(index=False)
    header = ["Task", "Dataset file", "Data digest", "CPU", "Kernels", "MKL_CBWR", "torch", "Trials"]
    assert len(header) == len(keys) + 2, "a provenance key without its column header"
    body = [[_fmt_text(fmt, str(v)) for v in row] for row in counts.itertuples(index=False)]
    return _render_table(fmt, header, body, caption=(
        "Where the trials' numbers come from: the dataset by the SHA-256 of its columns (a "
        "rebuilt dataset is other data; one task's results from two datasets are never pooled) "
        "and the machine (the same code and seed give other digits on another CPU)."))


def ablation_variant(row: pd.Series) -> str:
    """The Table 2 / Figure 4 name of a DSPO trial's discriminator configuration."""
    def param(key, default):
        v = row.get(f"params/discriminator.{key}", default)
        return default if v is None or (isinstance(v, float) and math.isnan(v)) else v

    mlp = param("variant", "safety_transformer") == "mlp"
    gp = ", w/ gp" if float(param("gradient_penalty", 0.0)) > 0 else ""
    # the stage-1 options of issue 12, named when a trial sets them away from the default
    options = []
    if param("vclub_samples", "data") != "data" and bool(param("return_agnostic", True)):
        options.append(f"vCLUB on the {param('vclub_samples', 'data')} samples")
    if param("pu_loss", "bce") != "bce":
        options.append(f"{param('pu_loss', 'bce')} loss")
    if param("score_reduction", "mean") != "mean":
        options.append(f"{param('score_reduction', 'mean').replace('_', '-')} scoring")
    if param("negatives", "uniform") != "uniform":
        options.append(f"{param('negatives', 'uniform').replace('_', '-')} negatives")
    if param("score_window", None) is not None and param("score_reduction", "mean") != "mean":
        options.append(f"score window {int(param('score_window', 0))}")
    if float(param("demo_noise", 0.0)) > 0:
        options.append(f"demo noise {float(param('demo_noise', 0.0)):g}")
    extra = f" [{', '.join(options)}]" if options else ""
    if bool(param("return_agnostic", True)):
        return ("MLP backbone (return-agnostic)" if mlp
                else "SafetyTransformer + return-agnostic (ours)") + gp + extra
    return ("MLP backbone " if mlp else "") + "w/o return-agnostic" + gp + extra


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


def _fmt_bold(fmt: str, text: str, bold: bool) -> str:
    t = _escape(fmt, text)
    if not bold:
        return t
    return {"md": f"**{t}**", "latex": rf"\textbf{{{t}}}", "html": f"<b>{t}</b>"}[fmt]


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
