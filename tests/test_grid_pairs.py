"""benchmarks/grid_pairs.py on sweep folders written as Tune writes them: a grid's configurations
side by side per task, paired by seed, with reference rows from a trials.csv."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def result(reward: float, cost: float, change: float | None = None) -> dict:
    extra = {} if change is None else {"generation/rollout_state_change": change}
    return {"eval/normalized_reward": reward, "eval/normalized_cost": cost, **extra}


def test_configurations_paired_by_seed_with_references(load_benchmark, tune_trial, tmp_path):
    gp = load_benchmark("grid_pairs")
    sweep = tmp_path / "stage2_rollout"
    rolled = {"generation.consistency": "dynamics_rollout"}
    for seed, (plain_cost, rolled_cost) in enumerate([(2.0, 1.0), (1.0, 1.5), (3.0, 0.5)]):
        # the plain runs do not report the rollout's metric: their row shows a dash for it
        tune_trial(sweep, "dspo", 0, seed, {}, result(0.6, plain_cost), task="DroneRun")
        tune_trial(sweep, "dspo", 1, seed, rolled, result(0.5, rolled_cost, 0.4), task="DroneRun")
    # seed 3 of the rolled configuration only: no partner, left out of the paired change
    tune_trial(sweep, "dspo", 1, 3, rolled, result(0.5, 9.0, 0.4), task="DroneRun")
    reference = tmp_path / "trials.csv"
    reference.write_text("method,task,seed,status,eval/normalized_reward,eval/normalized_cost\n"
                         + "".join(f"bc_safe,DroneRun,{s},finished,0.55,{c}\n"
                                   for s, c in enumerate((1.0, 1.2, 1.1)))
                         + "bc_safe,AntRun,0,finished,0.1,9.0\n" + "cql,DroneRun,0,finished,0.1,0.0\n")
    trials = gp.sweep_trials([str(sweep)], ["generation/rollout_state_change"])
    assert set(trials["configuration"]) == {"defaults", "generation.consistency=dynamics_rollout"}
    out = tmp_path / "docs" / "rollout.md"
    assert gp.main([str(sweep), "--reference", str(reference), "--metric",
                    "generation/rollout_state_change", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    body = [line for line in lines if line.startswith("| DroneRun")]
    assert body[0] == ("| DroneRun | dspo | defaults | 3 | 0.60 ± 0.00 | 2.00 ± 0.82 | 2.00 1.00 3.00 "
                       "| – | – |")
    # (1.0 - 2.0 + 1.5 - 1.0 + 0.5 - 3.0) / 3 = -1.00 on the three shared seeds
    assert body[1].startswith("| DroneRun | dspo | generation.consistency=dynamics_rollout | 4 |")
    assert "| 1.00 1.50 0.50 9.00 | -1.00 (lower on 2 of 3) | 0.400 |" in body[1]
    assert body[2] == ("| DroneRun | bc_safe (reference) | defaults | 3 | 0.55 ± 0.00 | 1.10 ± 0.08 "
                       "| 1.00 1.20 1.10 | – | – |")
    assert len(body) == 3  # no other task's, no other method's reference rows
    written = pd.read_csv(tmp_path / "docs" / "rollout_trials.csv")
    assert len(written) == 7 and "generation/rollout_state_change" in written


def test_configurations_equal_to_three_digits_stay_apart(load_benchmark, tune_trial, tmp_path):
    """Two sampled learning rates that agree to three significant digits are two rows, labelled
    with the digits that tell them apart; a configuration over two seeds stays one row; another
    method's labels keep three digits."""
    gp = load_benchmark("grid_pairs")
    sweep = tmp_path / "tuned"
    for seed in (0, 1):
        tune_trial(sweep, "bc_all", 0, seed, {"lr": 0.000107213}, result(0.4, 0.8))
        tune_trial(sweep, "bc_all", 1, seed, {"lr": 0.000107491}, result(0.5, 1.2))
    tune_trial(sweep, "bc_safe", 0, 0, {"lr": 0.0030123}, result(0.7, 0.5))
    trials = gp.sweep_trials([str(sweep)], [])
    labels = trials.groupby("group")["configuration"].unique().map(list).to_dict()
    assert labels == {"bc_all/CarCircle/0": ["lr=0.000107213"], "bc_all/CarCircle/1": ["lr=0.000107491"],
                      "bc_safe/CarCircle/0": ["lr=0.00301"]}
    body = [line for line in gp.pairs_table(trials, None, []).splitlines() if line.startswith("| CarCircle")]
    assert [line.split(" | ")[3] for line in body] == ["2", "2", "1"]  # seeds per row


def test_refusals_are_one_line(tune_trial, tmp_path):
    sweep = tmp_path / "sweep"
    tune_trial(sweep, "dspo", 0, 0, {}, result(0.6, 1.0))

    def run(*argv):
        return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_pairs.py"), *argv],
                              capture_output=True, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})

    for argv, message in [((str(sweep), "--metric", "generation/nothing"), "no trial reports generation/nothing"),
                          ((str(sweep), "--reference", str(tmp_path / "none.csv")), "no such file"),
                          ((str(tmp_path / "empty"),), "")]:
        proc = run(*argv)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.startswith("grid_pairs: ") and message in proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_reference_of_another_dataset_is_refused(load_benchmark, tune_trial, tmp_path):
    """A rebuilt dataset is other data: a reference row from another build of the task is refused;
    one that names no dataset (older results) is noted under the table as not checked."""
    gp = load_benchmark("grid_pairs")
    sweep = tmp_path / "tuned"
    for seed in (0, 1):
        tune_trial(sweep, "dspo", 0, seed, {}, {**result(0.6, 1.0), "data/sha256": "bf27254561370290"})
    header = "method,task,seed,status,eval/normalized_reward,eval/normalized_cost"
    other, older, out = tmp_path / "other.csv", tmp_path / "older.csv", tmp_path / "pairs.md"
    other.write_text(f"{header},data/sha256\nbc_safe,CarCircle,0,finished,0.5,0.2,0123456789abcdef\n")
    older.write_text(f"{header}\nbc_safe,CarCircle,0,finished,0.5,0.2\n")
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "grid_pairs.py"), str(sweep),
                           "--reference", str(other), "--out", str(out)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and proc.stderr.startswith("grid_pairs: task CarCircle: the results "
                                                           "come from 2 different datasets")
    assert "Traceback" not in proc.stderr and not out.exists()
    assert gp.main([str(sweep), "--reference", str(older), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| CarCircle | bc_safe (reference) | defaults | 1 |" in text
    assert text.rstrip().endswith("Not checked: --reference names no dataset for CarCircle (results "
                                  "older than 2026-12-03), the others name bf27254561370290: check "
                                  "that it ran on the same data.")


def test_oracle_runs_are_labelled_by_their_oracle(load_benchmark, tune_trial, tmp_path):
    """A diagnostic sweep's oracle runs keep their own rows, named by the oracle they ran with."""
    gp = load_benchmark("grid_pairs")
    sweep = tmp_path / "oracles"
    tune_trial(sweep, "dspo", 0, 0, {}, result(0.6, 2.0))
    tune_trial(sweep, "dspo", 1, 0, {"stage1_oracle": True},
               {**result(0.6, 1.9), "diagnostic/oracle_signal": 1})
    tune_trial(sweep, "dspo", 2, 0, {"stage2_oracle": True},
               {**result(0.7, 0.4), "diagnostic/oracle_windows": 1})
    labels = gp.sweep_trials([str(sweep)], []).set_index("group")["configuration"]
    assert labels.to_dict() == {"dspo/CarCircle/0": "defaults",
                                "dspo/CarCircle/1": "stage1_oracle=True [oracle signal]",
                                "dspo/CarCircle/2": "stage2_oracle=True [oracle windows]"}


def test_reference_may_be_a_results_folder_with_its_sources(load_benchmark, tune_trial, tmp_path):
    """--reference a committed results folder: the rows of the files its sources.txt names, each
    kept to its filters (here: BC-Safe's CarCircle rows of one file, none of the other's)."""
    gp = load_benchmark("grid_pairs")
    sweep = tmp_path / "sweep"
    tune_trial(sweep, "dspo", 0, 0, {}, result(0.6, 2.0))
    header = "method,task,seed,status,eval/normalized_reward,eval/normalized_cost\n"
    (tmp_path / "a.csv").write_text(header + "bc_safe,CarCircle,0,finished,0.5,0.3\n"
                                    + "bc_safe,CarCircle,1,finished,0.5,0.5\n")
    (tmp_path / "b.csv").write_text(header + "bc_safe,CarCircle,0,finished,0.1,9.0\n")
    folder = tmp_path / "gathered"
    folder.mkdir()
    (folder / "sources.txt").write_text("# two files\n../a.csv task=CarCircle\n../b.csv task=AntRun\n")
    out = tmp_path / "pairs.md"
    assert gp.main([str(sweep), "--reference", str(folder), "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if "(reference)" in line]
    assert rows == ["| CarCircle | bc_safe (reference) | defaults | 2 | 0.50 ± 0.00 | 0.40 ± 0.10 safe "
                    "| 0.30 0.50 | – |"]
