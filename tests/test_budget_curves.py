"""benchmarks/budget_curves.py on sweep folders written as Tune writes them (params.json and
result.json per trial): the budget of each grid group, the per-budget table, the refusal of a
budget list in the wrong order, and the grid's price at each budget."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "budget_curves.py"
BUDGETS = (0.25, 1.0, 4.0)


def budget_trial(tune_trial, root: Path, method: str, k: int, seed: int, reward: float,
                 cost: float, trial_s: float, eval_s: float) -> None:
    """A trial at the k-th budget, with its wall times as the method's trainer reports them."""
    step_key = "diffusion.steps" if method == "dspo" else "steps"
    eval_key = "time/evaluation_s" if method == "dspo" else "time/eval_s"
    tune_trial(root, method, k, seed, {step_key: int(2000 * BUDGETS[k])},
               {"eval/normalized_reward": reward, "eval/normalized_cost": cost, "time/trial_s": trial_s,
                eval_key: eval_s})


@pytest.fixture
def sweep(tmp_path, tune_trial) -> Path:
    """bc_safe: reward 0.2, 0.5, 0.6 (+0.1 on seed 1), training 10, 20, 50 s, evaluation 5 s.
    dspo: cost 3, 2, 1, training 100, 300, 1000 s, evaluation 10 s."""
    root = tmp_path / "budget_curves"
    for k, (reward, train) in enumerate([(0.2, 10), (0.5, 20), (0.6, 50)]):
        for seed in (0, 1):
            budget_trial(tune_trial, root, "bc_safe", k, seed, reward + 0.1 * seed, 0.5, train + 5, 5)
    for k, (cost, train) in enumerate([(3.0, 100), (2.0, 300), (1.0, 1000)]):
        for seed in (0, 1):
            budget_trial(tune_trial, root, "dspo", k, seed, 0.7, cost, train + 10, 10)
    return root


def test_budgets_from_groups_and_the_table(load_benchmark, sweep):
    bc = load_benchmark("budget_curves")
    done = bc.budgeted_trials([str(sweep)], list(BUDGETS))
    assert sorted(done["budget"].unique()) == list(BUDGETS)
    assert done.groupby(["method", "budget"])["train_s"].median().to_dict() == {
        ("bc_safe", 0.25): 10, ("bc_safe", 1.0): 20, ("bc_safe", 4.0): 50,
        ("dspo", 0.25): 100, ("dspo", 1.0): 300, ("dspo", 4.0): 1000}
    table = bc.curves_table(done, "CarCircle")
    bc_row = next(line for line in table.splitlines() if line.startswith("| bc_safe"))
    # mean ± population std over the two seeds, the change 1x -> 4x, the training wall times
    assert "0.65 ± 0.05 / 0.50 ± 0.00 (2)" in bc_row and "+0.10, +0.00" in bc_row
    assert bc_row.endswith("| 10 / 20 / 50 |")
    dspo_row = next(line for line in table.splitlines() if line.startswith("| dspo"))
    assert "+0.00, -1.00" in dspo_row


def test_grid_price_scales_training_not_evaluation(load_benchmark, sweep, tmp_path):
    bc = load_benchmark("budget_curves")
    done = bc.budgeted_trials([str(sweep)], list(BUDGETS))
    # Table 1 at 1x: bc_safe on two tasks, 100 s training + 40 s evaluation each; DSPO's oracle
    # diagnostic (in Table 1's trials.csv, not in its grid) is left out
    grid = tmp_path / "trials.csv"
    rows = [{"method": "bc_safe", "task": t, "status": "finished", "time/trial_s": 140.0,
             "time/eval_s": 40.0} for t in ("CarCircle", "AntRun")]
    rows += [{"method": "dspo", "task": "CarCircle", "status": "finished", "time/trial_s": 400.0 + 1e6 * o,
              "time/evaluation_s": 10.0, "diagnostic/oracle_signal": o or None} for o in (0, 1)]
    pd.DataFrame(rows).to_csv(grid, index=False)
    text = bc.grid_hours(done, grid, seeds=5, slots=2, grid_tasks=9)
    here, there = text.split("The same from")
    # from the sweep alone: its one task's 1x trial (20 s + 5 s) standing for all 9 tasks
    row = next(line for line in here.splitlines() if line.startswith("| bc_safe"))
    expected = [(20 * r + 5) * 9 * 5 / 2 / 3600 for r in (0.5, 1.0, 2.5)]
    assert row == "| bc_safe | " + " | ".join(f"{h:.2f}" for h in expected) + " |"
    row = next(line for line in there.splitlines() if line.startswith("| bc_safe"))
    # 4x: training ratio 50/20 = 2.5 -> (250 + 40) s x 2 tasks x 5 seeds / 2 slots = 1450 s
    expected = [(100 * r + 40) * 2 * 5 / 2 / 3600 for r in (0.5, 1.0, 2.5)]
    assert row == "| bc_safe | " + " | ".join(f"{h:.2f}" for h in expected) + " |"
    # DSPO: (390 s x training ratio 1/3, 1, 10/3 + 10 s) x 1 task x 5 seeds / 2 slots
    row = next(line for line in there.splitlines() if line.startswith("| dspo"))
    expected = [(390 * r + 10) * 5 / 2 / 3600 for r in (1 / 3, 1.0, 10 / 3)]
    assert row == "| dspo | " + " | ".join(f"{h:.2f}" for h in expected) + " |"


def test_budgets_in_the_wrong_order_are_refused(sweep, tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(sweep), "--budgets", "4", "1", "0.25",
                          "--out", str(tmp_path / "plots")], capture_output=True, text=True)
    assert out.returncode == 1 and "do not grow with the budget" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "plots").exists()


def test_the_command_writes_its_table_and_plot(sweep, tmp_path):
    table = tmp_path / "tables.md"
    out = subprocess.run([sys.executable, str(SCRIPT), str(sweep), "--out", str(tmp_path / "plots"),
                          "--table", str(table)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "plots" / "budget_curves_CarCircle.png").stat().st_size > 0
    assert table.read_text() == out.stdout and "### CarCircle (2 seeds" in out.stdout
    assert "Wall hours of the Table 1 grid" in out.stdout
    bare = subprocess.run([sys.executable, str(SCRIPT), str(sweep), "--out", str(tmp_path / "plots"),
                           "--no-price"], capture_output=True, text=True)
    assert bare.returncode == 0 and "Wall hours" not in bare.stdout and "### CarCircle" in bare.stdout


def test_the_1x_trials_beside_table1s(load_benchmark, sweep, tmp_path):
    bc = load_benchmark("budget_curves")
    done = bc.budgeted_trials([str(sweep)], list(BUDGETS))
    table1 = tmp_path / "trials.csv"
    pd.DataFrame([{"method": "bc_safe", "task": "CarCircle", "seed": s, "status": "finished",
                   "eval/normalized_reward": 0.5 + 0.1 * s + 0.01, "eval/normalized_cost": 0.7}
                  for s in (0, 1)]).to_csv(table1, index=False)
    text = bc.reproduced(done, table1)
    assert "| bc_safe | CarCircle | 1 | 0.600 / 0.610 | 0.50 / 0.70 |" in text
    assert "largest reward difference 0.010" in text and "| dspo" not in text  # only pairs
