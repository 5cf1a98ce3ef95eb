"""benchmarks/confirm_tuned.py on sweep folders written as Tune writes them (params.json and
result.json per trial): the chosen configuration per method becomes a confirmation sweep (defaults
and chosen, on fresh seeds) that the sweep's own validation accepts, and the table sets the two
side by side on the tuning seeds and the fresh ones."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dspo_ray.analysis.results import load_results
from dspo_ray.distributed.config import load_sweep_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "confirm_tuned.py"
BASE = ROOT / "experiments" / "configs" / "table1_tuned.yaml"


def result(reward: float, cost: float) -> dict:
    return {"eval/normalized_reward": reward, "eval/normalized_cost": cost}


# per method, two configurations: (params, reward, cost); the second is chosen (safe, or less costly)
TUNED = {
    "bc_safe": [({"lr": 3e-4}, 0.8, 1.5), ({"lr": 1e-3}, 0.7, 0.5)],
    "dspo": [({"diffusion.guidance_weight": 1.5, "discriminator.return_bins": 10}, 0.6, 3.0),
             ({"diffusion.guidance_weight": 2.5, "discriminator.return_bins": 5}, 0.6, 2.0)],
}


@pytest.fixture
def base(tmp_path) -> Path:
    """table1_tuned.yaml with two configurations per cell, as the fixture's sweep ran."""
    data = yaml.safe_load(BASE.read_text())
    data["num_samples"] = 2
    path = tmp_path / "tuned.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def tuned(tmp_path, tune_trial) -> Path:
    root = tmp_path / "table1_tuned_CarCircle"
    for method, configurations in TUNED.items():
        for k, (params, reward, cost) in enumerate(configurations):
            for seed in (0, 1, 2):
                tune_trial(root, method, k, seed, params, result(reward, cost))
    return root


def test_config_runs_defaults_and_chosen_on_fresh_seeds(load_benchmark, tuned, base, tmp_path):
    ct = load_benchmark("confirm_tuned")
    out = tmp_path / "confirm.yaml"
    assert ct.main(["config", str(tuned), "--base", str(base), "--seeds", "3", "4",
                    "--out", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["tasks"] == ["CarCircle"] and data["seeds"] == [3, 4]
    assert data["methods"] == ["dspo", "bc_safe"]  # the slowest first
    assert data["search"]["grid"] == {"bc_safe": [{}, {"lr": 1e-3}],
                                      "dspo": [{}, TUNED["dspo"][1][0]]}
    assert set(data["overrides"]) == {"bc_safe", "dspo"}  # the base's fixed settings, kept
    config = load_sweep_config(out)  # the sweep's own validation accepts it
    assert config.samples_per_cell("dspo") == 2 and "num_samples" not in data
    assert config.name == "table1_tuned_confirm_CarCircle"
    # one method only, under a name of its own
    assert ct.main(["config", str(tuned), "--base", str(base), "--method", "bc_safe", "--seeds", "3",
                    "--name", "confirm_bc", "--out", str(out)]) == 0
    data = yaml.safe_load(out.read_text())
    assert data["methods"] == ["bc_safe"] and list(data["overrides"]) == ["bc_safe"]
    assert data["name"] == "confirm_bc" and "--method bc_safe" in out.read_text().splitlines()[1]


def test_table_sets_tuning_and_fresh_seeds_side_by_side(load_benchmark, tuned, tmp_path, tune_trial):
    ct = load_benchmark("confirm_tuned")
    confirm = tmp_path / "confirm"
    # fresh seeds: bc_safe's chosen lr stays safe and beats its defaults; dspo's does not
    for seed in (3, 4):
        tune_trial(confirm, "bc_safe", 0, seed, {}, result(0.9, 1.8))
        tune_trial(confirm, "bc_safe", 1, seed, {"lr": 1e-3}, result(0.6, 0.4 + 0.2 * (seed - 3)))
        tune_trial(confirm, "dspo", 0, seed, {}, result(0.6, 1.5))
        tune_trial(confirm, "dspo", 1, seed, TUNED["dspo"][1][0], result(0.6, 2.5))
    column_a = tmp_path / "trials.csv"
    column_a.write_text("method,task,seed,status,eval/normalized_reward,eval/normalized_cost\n"
                        + "".join(f"bc_safe,CarCircle,{s},finished,0.75,0.5\n" for s in (0, 1, 2))
                        + "bc_safe,AntRun,0,finished,0.1,9.0\n")
    table, fresh = ct.confirmation_table([str(tuned)], [str(confirm)], [str(column_a)], None)
    assert len(fresh) == 8 and set(fresh["configuration"]) == {0, 1}  # the trials it summarises
    bc = next(line for line in table.splitlines() if line.startswith("| bc_safe"))
    assert bc == ("| bc_safe | lr=0.001 | **0.75 / 0.50** | **0.70 / 0.50** | 3, 4 | 0.90 / 1.80 "
                  "| **0.60 / 0.50** | yes |")
    dspo = next(line for line in table.splitlines() if line.startswith("| dspo"))
    assert dspo.endswith("| n/a | 0.60 / 2.00 | 3, 4 | 0.60 / 1.50 | 0.60 / 2.50 | no |")
    assert "seeds 0, 1, 2" in table
    # the tuned sweep's trials.csv (as analysis/make_tables.py writes it) stands in for its folder
    tuned_csv = tmp_path / "tuned_trials.csv"
    tuned_csv.write_text(load_results([str(tuned)])[0].to_csv(index=False))
    assert ct.confirmation_table([str(tuned_csv)], [str(confirm)], [str(column_a)], None)[0] == table
    # a second confirmation sweep with more fresh seeds for one method: its row only
    more = tmp_path / "confirm_more"
    tune_trial(more, "dspo", 1, 5, TUNED["dspo"][1][0], result(0.6, 0.5))
    table, _ = ct.confirmation_table([str(tuned)], [str(confirm), str(more)], [], "CarCircle")
    dspo = next(line for line in table.splitlines() if line.startswith("| dspo"))
    assert "| 3, 4, 5 | 0.60 / 1.50 | 0.60 / 1.83 |" in dspo
    assert "| 3, 4 |" in next(line for line in table.splitlines() if line.startswith("| bc_safe"))
    # the command writes the table and, beside it, the fresh-seed trials it summarises
    out = tmp_path / "docs" / "confirm.md"
    out.parent.mkdir()
    assert ct.main(["table", str(tuned), "--confirm", str(confirm), str(more), "--out", str(out)]) == 0
    assert out.read_text() == table
    trials = pd.read_csv(tmp_path / "docs" / "confirm_trials.csv")
    assert len(trials) == 9 and trials.loc[trials["seed"] == 5, "eval/normalized_cost"].tolist() == [0.5]


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def assert_one_line_refusal(proc: subprocess.CompletedProcess, message: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("confirm_tuned: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_refusals_are_one_line(tuned, base, tmp_path, tune_trial):
    # "fresh" seeds that the tuning saw
    confirm = tmp_path / "confirm"
    tune_trial(confirm, "bc_safe", 0, 2, {}, result(0.9, 1.8))
    assert_one_line_refusal(run_cli("table", str(tuned), "--confirm", str(confirm)),
                            "overlap the tuning seeds")
    # a method whose tuning is not over (1 of 2 x 3 trials; its choice could change): nothing is
    # written, unless the finished methods are chosen with --method
    tune_trial(tuned, "td3bc", 0, 0, {"alpha": 2.5}, result(0.1, 0.1))
    out = tmp_path / "c.yaml"
    assert_one_line_refusal(run_cli("config", str(tuned), "--base", str(base), "--seeds", "3",
                                    "--out", str(out)), "td3bc on CarCircle: 1 of 6 tuning trials")
    assert not out.exists()
    proc = run_cli("config", str(tuned), "--base", str(base), "--method", "bc_safe",
                   "--method", "dspo", "--seeds", "3", "--out", str(out))
    assert proc.returncode == 0 and out.exists(), proc.stderr
    assert_one_line_refusal(run_cli("config", str(tuned), "--base", str(base), "--method", "iql",
                                    "--seeds", "3", "--out", str(out)), "--method iql: not in")


def test_column_a_of_another_dataset_is_refused(load_benchmark, tmp_path, tune_trial):
    """A rebuilt dataset is other data: column (a) from another build of the task is refused, and
    one that names no dataset (older results) is printed as not checked under the table."""
    ct = load_benchmark("confirm_tuned")
    rebuilt = "bf27254561370290"
    tuned_on_rebuilt = tmp_path / "tuned_rebuilt"
    for k, (params, reward, cost) in enumerate(TUNED["bc_safe"]):
        for seed in (0, 1, 2):
            tune_trial(tuned_on_rebuilt, "bc_safe", k, seed, params,
                       {**result(reward, cost), "data/sha256": rebuilt})
    confirm = tmp_path / "confirm"
    for seed in (3, 4):
        tune_trial(confirm, "bc_safe", 0, seed, {}, {**result(0.9, 1.8), "data/sha256": rebuilt})
    header = "method,task,seed,status,eval/normalized_reward,eval/normalized_cost,data/sha256\n"
    first_build = tmp_path / "first_build.csv"
    first_build.write_text(header + "".join(f"bc_safe,CarCircle,{s},finished,0.75,0.5,0123456789abcdef\n"
                                            for s in (0, 1, 2)))
    proc = run_cli("table", str(tuned_on_rebuilt), "--confirm", str(confirm), "--fixed", str(first_build))
    assert_one_line_refusal(proc, "task CarCircle: the results come from 2 different datasets")
    assert "0123456789abcdef in --fixed" in proc.stderr and "--fixed from its runs on the rebuilt" in proc.stderr
    # the same build: accepted, nothing noted
    same = tmp_path / "same_build.csv"
    same.write_text(first_build.read_text().replace("0123456789abcdef", rebuilt))
    table, _ = ct.confirmation_table([str(tuned_on_rebuilt)], [str(confirm)], [str(same)], None)
    assert "**0.75 / 0.50**" in table and "Not checked" not in table
    # no digest at all (results older than 2026-12-03): shown, and said to be unchecked
    older = tmp_path / "older.csv"
    older.write_text("\n".join(line.rsplit(",", 1)[0] for line in first_build.read_text().splitlines()) + "\n")
    table, _ = ct.confirmation_table([str(tuned_on_rebuilt)], [str(confirm)], [str(older)], None)
    assert "**0.75 / 0.50**" in table
    assert table.rstrip().endswith(f"Not checked: --fixed names no dataset for CarCircle (results older "
                                   f"than 2026-12-03), the others name {rebuilt}: check that it ran "
                                   "on the same data.")

