"""Analysis: the rank rule on a crafted frame, every table format, plots, the CLI."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dspo_ray.analysis import (average_ranks, choose_configurations, parameter_importances,
                               rank_methods, reward_cost_plots, table1, table2)

ROOT = Path(__file__).resolve().parents[1]


def crafted_trials() -> pd.DataFrame:
    """CarCircle: 'timid' is safe with low reward, 'greedy' unsafe with high reward.
    DroneRun: both safe. 'timid' has a failed third seed."""
    rows = []

    def add(method, task, seed, reward, cost, status="finished", group=None, **params):
        rows.append({"method": method, "task": task, "suite": "BulletGym", "seed": seed,
                     "group": group or method, "status": status,
                     "eval/normalized_reward": reward if status == "finished" else np.nan,
                     "eval/normalized_cost": cost if status == "finished" else np.nan,
                     **{f"params/{k}": v for k, v in params.items()}})

    for s, (r, c) in enumerate([(0.20, 0.5), (0.24, 0.7)]):
        add("timid", "CarCircle", s, r, c)
    add("timid", "CarCircle", 2, None, None, status="error")
    for s, (r, c) in enumerate([(0.90, 3.0), (0.95, 2.5)]):
        add("greedy", "CarCircle", s, r, c)
    for s in range(2):
        add("timid", "DroneRun", s, 0.3, 0.2)
        add("greedy", "DroneRun", s, 0.6, 0.9)
    # DSPO with two configurations: the unsafe high-reward one must not be chosen
    for s in range(2):
        add("dspo", "CarCircle", s, 0.8, 2.0, group="dspo/a", **{"discriminator.vclub_coef": 0.01})
        add("dspo", "CarCircle", s, 0.4, 0.8, group="dspo/b", **{"discriminator.vclub_coef": 0.5})
    return pd.DataFrame(rows)


def test_safe_low_reward_outranks_unsafe_high_reward():
    cells = rank_methods(choose_configurations(crafted_trials()))
    rank = {(r.task, r.method): r.rank for r in cells.itertuples()}
    assert rank[("CarCircle", "dspo")] == 1      # safe config b (0.4) chosen over unsafe a (0.8)
    assert rank[("CarCircle", "timid")] == 2     # safe 0.22
    assert rank[("CarCircle", "greedy")] == 3    # unsafe 0.925: last despite the highest reward
    assert rank[("DroneRun", "greedy")] == 1     # both safe: higher reward wins
    avg = average_ranks(cells)
    assert avg.loc["BulletGym", "greedy"] == 2.0 and avg.loc["BulletGym", "timid"] == 2.0
    chosen = cells.set_index(["task", "method"]).loc[("CarCircle", "dspo")]
    assert chosen.group == "dspo/b" and chosen.safe


def test_partial_results_are_flagged_not_hidden():
    cells = choose_configurations(crafted_trials()).set_index(["task", "method"])
    timid = cells.loc[("CarCircle", "timid")]
    assert (timid.seeds, timid.seeds_expected, timid.failed) == (2, 3, 1)
    md = table1(crafted_trials(), "md")
    assert "2/3 seeds, 1 failed" in md


@pytest.mark.parametrize("fmt, safe_mark, unsafe_mark, best_mark", [
    ("md", "**0.22 ± 0.02 / 0.60 ± 0.10**", "0.93 ± 0.02 / 2.75 ± 0.25 ⚠unsafe",
     "**0.40 ± 0.00 / 0.80 ± 0.00** ★"),
    ("latex", r"\textbf{0.22 $\pm$ 0.02 / 0.60 $\pm$ 0.10}",
     r"\textcolor{gray}{0.93 $\pm$ 0.02 / 2.75 $\pm$ 0.25}",
     r"\textcolor{blue}{\textbf{0.40 $\pm$ 0.00 / 0.80 $\pm$ 0.00}}"),
    ("html", "<b title=\"normalised cost 0.60\">0.22 ± 0.02 / 0.60 ± 0.10</b>", '<span style="color:gray"',
     '<b style="color:blue"'),
])
def test_table1_formats_mark_safety(fmt, safe_mark, unsafe_mark, best_mark):
    text = table1(crafted_trials(), fmt)
    assert safe_mark in text and unsafe_mark in text and best_mark in text
    assert "BulletGym average rank" in text


def test_table1_csv_and_bad_format():
    frame = pd.read_csv(__import__("io").StringIO(table1(crafted_trials(), "csv")))
    assert {"method", "task", "reward_mean", "reward_std", "cost_mean", "cost_std", "safe",
            "rank"} <= set(frame)
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        table1(crafted_trials(), "pdf")


def test_table2_variants():
    t = crafted_trials()
    dspo = t["method"] == "dspo"
    t.loc[dspo, "discriminator/recall"] = [0.9, 0.5, 0.8, 0.6]
    t.loc[dspo, "discriminator/accuracy"] = 0.7
    t["params/discriminator.return_agnostic"] = None
    t.loc[dspo, "params/discriminator.return_agnostic"] = [True, False, True, False]
    md = table2(t, "md")
    assert "SafetyTransformer (return-agnostic)" in md and "w/o return-agnostic" in md
    assert "**0.850**" in md  # best recall in bold


def test_plots_and_importances(tmp_path):
    t = crafted_trials()
    paths = reward_cost_plots(t, tmp_path)
    assert {p.name for p in paths} == {"reward_vs_cost_CarCircle.png", "reward_vs_cost_DroneRun.png"}
    assert all(p.stat().st_size > 1000 for p in paths)
    t["objective"] = np.where(t["eval/normalized_cost"] <= 1, t["eval/normalized_reward"],
                              -t["eval/normalized_cost"])
    rng = np.random.default_rng(0)
    extra = pd.DataFrame({"method": "dspo", "task": "CarCircle", "suite": "BulletGym",
                          "seed": 0, "group": [f"g{i}" for i in range(12)], "status": "finished",
                          "params/a": rng.uniform(0, 1, 12), "params/b": rng.uniform(0, 1, 12)})
    extra["objective"] = 3 * extra["params/a"] + 0.1 * extra["params/b"]
    imp = parameter_importances(extra)
    assert list(imp["parameter"])[0] == "params/a"  # the parameter that drives the objective


def test_cli_rejects_missing_results(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "analysis/make_tables.py"),
                          "--results", str(tmp_path / "nope")], capture_output=True, text=True)
    assert out.returncode == 2 and "no such folder" in out.stderr
    (tmp_path / "empty").mkdir()
    out = subprocess.run([sys.executable, str(ROOT / "analysis/make_tables.py"),
                          "--results", str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 2 and "no trial folders" in out.stderr
