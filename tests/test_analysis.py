"""Analysis: the rank rule on a crafted frame, every table format, plots, the CLI."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dspo_ray.analysis import (average_ranks, choose_configurations, oracle_table,
                               parameter_importances, rank_methods, reward_cost_plots,
                               stage1_frame, table1, table2)

ROOT = Path(__file__).resolve().parents[1]
DSPO_TUNED = "dspo (tuned on eval)"  # crafted_trials' DSPO: two configurations, chosen on the evaluation


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
    assert rank[("CarCircle", DSPO_TUNED)] == 1      # safe config b (0.4) chosen over unsafe a (0.8)
    assert rank[("CarCircle", "timid")] == 2     # safe 0.22
    assert rank[("CarCircle", "greedy")] == 3    # unsafe 0.925: last despite the highest reward
    assert rank[("DroneRun", "greedy")] == 1     # both safe: higher reward wins
    avg = average_ranks(cells)
    assert avg.loc["BulletGym", "greedy"] == 2.0 and avg.loc["BulletGym", "timid"] == 2.0
    chosen = cells.set_index(["task", "method"]).loc[("CarCircle", DSPO_TUNED)]
    assert chosen.group == "dspo/b" and chosen.safe


def test_a_tuned_sweep_gets_its_own_labelled_column_beside_a_fixed_one():
    """Table 1's columns (a) and (b): one configuration per task (fixed in advance) and the best of
    several by the simulator's evaluation, which sees costs: two columns, the second labelled."""
    t = crafted_trials().assign(sweep="tuned")
    fixed = t[t["group"] == "dspo/a"].assign(sweep="fixed", group="dspo/0")
    cells = choose_configurations(pd.concat([fixed, t], ignore_index=True)).set_index(["task", "method"])
    assert cells.loc[("CarCircle", "dspo"), "reward_mean"] == pytest.approx(0.8)  # the fixed one
    assert cells.loc[("CarCircle", DSPO_TUNED), "group"] == "dspo/b"
    assert ("CarCircle", "timid") in cells.index  # one configuration: no label
    md = table1(pd.concat([fixed, t], ignore_index=True))
    assert "| dspo | dspo (tuned on eval) |" in md and "sees the simulator's costs" in md


def test_partial_results_are_flagged_not_hidden():
    cells = choose_configurations(crafted_trials()).set_index(["task", "method"])
    timid = cells.loc[("CarCircle", "timid")]
    assert (timid.seeds, timid.seeds_expected, timid.failed) == (2, 3, 1)
    md = table1(crafted_trials(), "md")
    assert "2/3 seeds, 1 failed" in md


def test_tasks_run_on_different_numbers_of_seeds_say_theirs():
    """CarCircle ran 3 seeds (one failed), DroneRun 2: each row names its number; a table whose
    tasks all ran the same number names none."""
    md = table1(crafted_trials(), "md")
    assert "| CarCircle (3 seeds) |" in md and "| DroneRun (2 seeds) |" in md
    two_seeds = crafted_trials().query("seed < 2")
    md = table1(two_seeds, "md")
    assert "| CarCircle |" in md and "| DroneRun |" in md and " seeds) |" not in md


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


def test_provenance_counts_trials_per_dataset_and_machine():
    """One row per (task, dataset digest, machine); results from before it was recorded say so."""
    from dspo_ray.analysis import provenance_table

    trials = crafted_trials()
    recorded = trials.index[:3]
    trials.loc[recorded, "data/sha256"] = "c43997893e33e6c7"
    trials.loc[recorded, "machine/cpu_capability"] = "AVX512"
    csv = pd.read_csv(io.StringIO(provenance_table(trials, "csv")))
    assert csv["trials"].sum() == len(trials)
    assert csv.loc[csv["data/sha256"] == "c43997893e33e6c7", "trials"].sum() == 3
    assert set(csv.loc[csv["data/sha256"] == "not recorded", "machine/cpu_capability"]) == {"not recorded"}
    assert "c43997893e33e6c7 | not recorded | AVX512 | not recorded" in provenance_table(trials, "md")
    with pytest.raises(ValueError, match="unknown format"):
        provenance_table(trials, "pdf")


def test_table1_csv_and_bad_format():
    frame = pd.read_csv(__import__("io").StringIO(table1(crafted_trials(), "csv")))
    assert {"method", "task", "reward_mean", "reward_std", "cost_mean", "cost_std", "safe",
            "rank"} <= set(frame)
    with pytest.raises(ValueError, match="unknown format 'pdf'"):
        table1(crafted_trials(), "pdf")


def stage1_trials() -> pd.DataFrame:
    """Stage-1-only DSPO trials (stop_after: labels) of two tasks, four variants, two seeds."""
    variants = [dict(), {"discriminator.return_agnostic": False},
                {"discriminator.return_agnostic": False, "discriminator.gradient_penalty": 1.0},
                {"discriminator.variant": "mlp"}]
    rows = []
    for task, shift in (("DroneRun", 0.0), ("AntRun", 0.1)):
        for k, params in enumerate(variants):
            for seed in range(2):
                rows.append({"method": "dspo", "task": task, "suite": "BulletGym", "seed": seed,
                             "group": f"dspo/{task}/{k}", "status": "stopped_as_configured",
                             "discriminator/auroc": 0.5 + 0.1 * k + shift + 0.02 * seed,
                             "discriminator/recall": 0.3, "neg_return/auroc": 0.8 + shift / 2,
                             "stage1/heldout_demo_auroc": 0.7,
                             "discriminator/unlabelled_safe_fraction": 0.1,
                             **{f"params/{key}": v for key, v in params.items()}})
    return pd.DataFrame(rows)


def test_table2_per_task_every_variant_and_the_negative_return_rule():
    frame = stage1_frame(stage1_trials()).set_index(["task", "row"])
    assert len(frame) == 2 * 5  # never pooled across tasks
    ours = frame.loc[("AntRun", "SafetyTransformer + return-agnostic (ours)")]
    assert ours["discriminator/auroc"] == pytest.approx(0.61)  # seeds 0.60, 0.62
    assert ours["discriminator/auroc std"] == pytest.approx(0.01) and ours["seeds"] == 2
    assert frame.loc[("DroneRun", "MLP backbone (return-agnostic)"), "discriminator/auroc"] == pytest.approx(0.81)
    assert frame.loc[("DroneRun", "w/o return-agnostic, w/ gp"), "discriminator/auroc"] == pytest.approx(0.71)
    neg = frame.loc[("AntRun", "Negative return (score = -return)")]
    assert neg["discriminator/auroc"] == pytest.approx(0.85) and np.isnan(neg["discriminator/recall"])
    md = table2(stage1_trials(), "md")
    assert md.index("AUROC") < md.index("Recall")  # AUROC first
    assert "**0.910 ± 0.010**" in md  # AntRun's best AUROC (MLP) in bold
    assert "Held-out demo AUROC (label-free)" in md and "Final score" not in md
    assert "Safe share (chance AP)" in md and "| 0.100 |" in md
    # oracle runs are never in Table 2
    t = stage1_trials().assign(**{"diagnostic/oracle_signal": 1})
    assert "no DSPO trial" in table2(t)


def test_oracle_runs_only_in_their_own_table():
    t = crafted_trials()
    oracle = t[t["group"] == "dspo/a"].assign(group="dspo/oracle", **{"eval/normalized_reward": 0.99,
                                                                      "eval/normalized_cost": 0.1})
    bc = t[t["method"] == "timid"].assign(method="bc_safe")
    t = pd.concat([t, oracle.assign(**{"diagnostic/oracle_signal": 1}), bc], ignore_index=True)
    chosen = choose_configurations(t).set_index(["task", "method"])
    assert chosen.loc[("CarCircle", DSPO_TUNED), "group"] == "dspo/b"  # the oracle is never chosen
    assert "0.99" not in table1(t)
    md = oracle_table(t)
    assert "DSPO (oracle signal, upper bound)" in md and "**0.99 ± 0.00 / 0.10 ± 0.00**" in md
    assert "**0.40 ± 0.00 / 0.80 ± 0.00**" in md  # DSPO (learned)
    assert oracle_table(crafted_trials()) is None
    # the oracle on DroneRun too (2 seeds, as BC-Safe there), where BC-Safe ran 3 on CarCircle:
    # rows name their seeds
    more = oracle.assign(task="DroneRun", seed=oracle["seed"] + 2)
    md = oracle_table(pd.concat([t, more.assign(**{"diagnostic/oracle_signal": 1})], ignore_index=True))
    assert "| CarCircle (3 seeds) |" in md and "| DroneRun (2 seeds) |" in md
    assert "oracle windows" not in md
    # oracle-window runs (stage2_oracle) get their own column, and are never in Table 1 either
    windows = oracle.assign(group="dspo/windows", **{"eval/normalized_reward": 0.77,
                                                      "diagnostic/oracle_windows": 1})
    both = pd.concat([t, windows], ignore_index=True)
    assert "0.77" not in table1(both)
    md = oracle_table(both)
    header = md.splitlines()[0]
    assert header.index("DSPO (oracle signal, upper bound)") < header.index(
        "DSPO (oracle windows, upper bound)") < header.index("BC-Safe")
    assert "**0.77 ± 0.00 / 0.10 ± 0.00**" in md and "**0.99 ± 0.00 / 0.10 ± 0.00**" in md
    assert "what a perfect stage 2 can give" in md


def test_stage1_only_trials_have_their_own_status():
    from dspo_ray.analysis.results import trial_status

    done = {"completed": True, "run/stopped_after_stage": 2, "discriminator/auroc": 0.7}
    assert trial_status([{"progress": 1}, done], errored=False) == "stopped_as_configured"
    assert trial_status([{"progress": 1}], errored=False) == "incomplete"
    assert trial_status([{"eval/normalized_reward": 0.1, "eval/normalized_cost": 0.2}], False) == "finished"


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
    # a second method with its own knob, and DSPO on a second task where b drives the objective:
    # one search each, never pooled (pooled, no trial has every parameter and nothing is returned)
    other = pd.DataFrame({"method": "iql", "task": "CarCircle", "suite": "BulletGym", "seed": 0,
                          "group": [f"i{i}" for i in range(6)], "status": "finished",
                          "params/expectile": rng.uniform(0.5, 0.9, 6)})
    other["objective"] = other["params/expectile"]
    second_task = extra.assign(task="DroneRun", objective=extra["params/a"] + 3 * extra["params/b"])
    imp = parameter_importances(pd.concat([extra, other, second_task], ignore_index=True))
    top = imp.sort_values("importance", ascending=False).groupby(["method", "task"])["parameter"].first()
    assert top.to_dict() == {("dspo", "CarCircle"): "params/a", ("dspo", "DroneRun"): "params/b",
                             ("iql", "CarCircle"): "params/expectile"}


def test_cli_rejects_missing_results(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "analysis/make_tables.py"),
                          "--results", str(tmp_path / "nope")], capture_output=True, text=True)
    assert out.returncode == 2 and "no such folder" in out.stderr
    (tmp_path / "empty").mkdir()
    out = subprocess.run([sys.executable, str(ROOT / "analysis/make_tables.py"),
                          "--results", str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 2 and "no trial folders" in out.stderr


def test_stage1_only_results_make_tables_without_evaluation(tmp_path):
    from dspo_ray.analysis import hyperparameter_plots

    t = stage1_trials()
    assert reward_cost_plots(t, tmp_path) == [] and hyperparameter_plots(t, tmp_path) == []
    assert parameter_importances(t).empty
    assert "no result" in table1(t)


def test_an_oracle_sweeps_summary_shows_its_runs_apart():
    from dspo_ray.analysis.tables import sweep_summary

    t = crafted_trials()
    t = t[t["method"] == "dspo"].assign(**{"diagnostic/oracle_signal": 1})
    summary = sweep_summary(t)
    assert list(summary["method"]) == ["dspo (oracle signal) (tuned on eval)"]
    assert summary["seeds"].iloc[0] == 2
    mixed = sweep_summary(pd.concat([crafted_trials(), t], ignore_index=True)).set_index(["method", "task"])
    assert mixed.loc[(DSPO_TUNED, "CarCircle"), "group"] == "dspo/b"
    assert ("dspo (oracle signal) (tuned on eval)", "CarCircle") in mixed.index
    windows = t.assign(**{"diagnostic/oracle_signal": 0, "diagnostic/oracle_windows": 1})
    assert list(sweep_summary(windows)["method"]) == ["dspo (oracle windows) (tuned on eval)"]


def test_table2_names_every_stage1_variant_and_option():
    from dspo_ray.analysis.tables import ablation_variant

    def name(**params):
        return ablation_variant(pd.Series({f"params/discriminator.{k}": v for k, v in params.items()}))

    assert name() == "SafetyTransformer + return-agnostic (ours)"
    assert name(return_agnostic=False, gradient_penalty=1.0) == "w/o return-agnostic, w/ gp"
    assert name(variant="mlp") == "MLP backbone (return-agnostic)"
    assert name(vclub_samples="batch") == ("SafetyTransformer + return-agnostic (ours) "
                                           "[vCLUB on the batch samples]")
    assert name(pu_loss="nnpu", score_reduction="min_window") == (
        "SafetyTransformer + return-agnostic (ours) [nnpu loss, min-window scoring]")
    assert name(negatives="return_matched", score_reduction="min_window", score_window=10) == (
        "SafetyTransformer + return-agnostic (ours) [min-window scoring, return-matched "
        "negatives, score window 10]")
    # the vCLUB sampling means nothing without the term
    assert name(return_agnostic=False, vclub_samples="batch") == "w/o return-agnostic"



def _tables(capsys, *args):
    """dspo-tables in this process (as its command runs it): exit status, stdout, stderr."""
    from dspo_ray.cli import run_cli
    from dspo_ray.commands.tables import main

    status = run_cli(main, [str(a) for a in args])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_committed_tables_are_what_the_code_makes_of_their_committed_trials(capsys):
    """Issue 14.5: every table of the Table 1 note (column (a), each task's column (b), and the
    folders gathered by a sources.txt, some of its lines keeping some methods or tasks) is
    regenerated from the committed trials.csv files, byte for byte. The importances too: they
    need the CSV's floats to the last digit (read round-trip)."""
    status, out, err = _tables(capsys, "--regenerate", ROOT / "docs/results/table1", "--check")
    assert status == 0, out + err
    assert "tables are what the code makes of their trials" in out
    assert "table1/two_dspo_columns" in out and "table1/column_b_all" in out


def test_regenerate_finds_a_changed_table_and_rewrites_it(tmp_path, capsys):
    import shutil

    source = ROOT / "docs/results/table1/column_b_PointGoal1_rgm_cdtv"
    folder = tmp_path / "notes" / "one_task"
    folder.mkdir(parents=True)
    for name in ("table1.md", "table2.md", "hyperparameters.csv", "trials.csv"):
        shutil.copy(source / name, folder / name)
    gathered = tmp_path / "notes" / "gathered"  # a folder made from another's trials
    gathered.mkdir()
    (gathered / "sources.txt").write_text("# the one task\n../one_task/trials.csv\n")
    shutil.copy(source / "table1.md", gathered / "table1.md")
    original = (folder / "table1.md").read_text()
    (folder / "table1.md").write_text(original.replace("0.", "9.", 1))
    (gathered / "table1.md").write_text("stale\n")

    status, out, _ = _tables(capsys, "--regenerate", tmp_path / "notes", "--check")
    assert status == 1
    assert "2 committed tables are not what the code makes" in out
    assert str(folder / "table1.md") in out and str(gathered / "table1.md") in out
    assert (gathered / "table1.md").read_text() == "stale\n"  # --check writes nothing
    assert sorted(p.name for p in gathered.iterdir()) == ["sources.txt", "table1.md"]

    status, _, err = _tables(capsys, "--regenerate", tmp_path / "notes", "--no-plots")
    assert status == 0, err
    assert (folder / "table1.md").read_text() == original
    assert (gathered / "table1.md").read_text() == original
    assert not (gathered / "trials.csv").exists()  # only the tables a folder holds
    assert _tables(capsys, "--regenerate", tmp_path / "notes", "--check")[0] == 0
    # importances: last digits may follow the CPU; a real change may not
    importances = pd.read_csv(folder / "hyperparameters.csv")
    for scale, status in [(1 + 1e-14, 0), (1.01, 1)]:
        importances.assign(importance=importances["importance"] * scale).to_csv(
            folder / "hyperparameters.csv", index=False)
        assert _tables(capsys, "--regenerate", tmp_path / "notes", "--check")[0] == status, scale


def test_regenerate_rejects_bad_input_in_one_line(tmp_path, capsys):
    bad_filter, empty = tmp_path / "bad_filter", tmp_path / "empty"
    bad_filter.mkdir()
    empty.mkdir()
    (bad_filter / "sources.txt").write_text(
        f"{ROOT / 'docs/results/table1/column_b_AntRun/trials.csv'} seed=0\n")
    for args, message in [(["--regenerate", bad_filter], "'seed=0' is not a filter"),
                          (["--regenerate", tmp_path / "nope"], "no such folder"),
                          (["--regenerate", empty], "no folder under it holds a trials.csv"),
                          (["--check"], "--check goes with --regenerate"),
                          ([], "pass --results"),
                          (["--regenerate", tmp_path, "--results", tmp_path], "takes no --results")]:
        status, _, err = _tables(capsys, *args)
        assert status == 2 and message in err, (args, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
