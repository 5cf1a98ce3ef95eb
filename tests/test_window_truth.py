"""benchmarks/window_truth.py (reporting only: it reads the hidden cost) on the shipped CarCircle
data: its state cost rule reproduces the dataset's costs, windows are scored by it, and a task
without a rule is refused in one line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dspo_ray.data import SplitConfig, load_task_data
from dspo_ray.dspo.generate import save_generated

ROOT = Path(__file__).resolve().parents[1]


def run_folder(folder: Path, task: str, observations: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": task, "split": {"seed": 0}}))
    n, horizon, _ = observations.shape
    save_generated(folder / "generated.npz", {
        "observations": observations, "actions": np.zeros((n, horizon, 2), np.float32),
        "return_condition": np.ones(n, np.float32), "safety_condition": np.full(n, 0.5, np.float32),
        "guidance_weight": np.float32(2.0)})
    return folder


def run(*argv):
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / "window_truth.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_generated_windows_are_scored_by_the_state_cost_rule(tmp_path):
    data, truth = load_task_data("CarCircle", None, SplitConfig(seed=0))
    unsafe = [t for t, s in zip(data.unlabelled, truth.unlabelled_is_safe) if not s]
    # "generated" windows cut from the unsafe trajectories: some of their states cost
    windows = np.stack([t.observations[start:start + 16] for t in unsafe[:20]
                        for start in range(0, len(t.observations) - 16, 50)])
    expected = np.abs(windows[..., 0]) > 0.6
    assert 0 < expected.mean() < 1
    folder = run_folder(tmp_path / "dspo-CarCircle-0-seed0-test", "CarCircle", windows)
    table = tmp_path / "truth.md"
    proc = run(folder, "--table", table)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split(" | ")[1]: line.split(" | ") for line in table.read_text().splitlines()[2:]}
    generated = rows["generated (as run)"]
    assert generated[2] == str(expected.size)  # three decimals in the table
    assert float(generated[3]) == pytest.approx(expected.mean(), abs=5e-4)
    assert float(generated[4]) == pytest.approx(expected.any(1).mean(), abs=5e-4)
    assert float(rows["(the rule against the dataset's costs: agreement)"][3]) == 1.0
    # the hidden truth's two sides differ as they must: the safe demonstrations rarely cost
    assert float(rows["safe demonstrations"][3]) < 0.05 < float(rows["unlabelled, unsafe (truth)"][3])


def test_a_task_without_a_rule_is_refused_in_one_line(tmp_path):
    folder = run_folder(tmp_path / "dspo-DroneRun-0-seed0-test", "DroneRun",
                        np.zeros((2, 16, 3), np.float32))
    proc = run(folder)
    assert proc.returncode == 1
    assert proc.stderr.startswith("window_truth: ") and "no state cost rule" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_condition_response_asks_for_conditions_from_the_runs_own_signals(load_benchmark, tmp_path):
    cr = load_benchmark("condition_response")
    signal = np.array([0.9, 0.6, 0.7] + list(np.linspace(0.0, 1.0, 101)))
    is_demo = np.arange(len(signal)) < 3
    asked = cr.conditions({"safety_signal": signal, "is_demo": is_demo})
    assert asked == pytest.approx({"low": 0.05, "as run": 0.6, "high": 0.9})
    # paired shares: b is a everywhere but 10% of windows; the interval holds the mean and not 0
    rng = np.random.default_rng(0)
    a = rng.random(500)
    b = a + (rng.random(500) < 0.1) * 0.5
    mean, lo, hi = cr.paired_difference(a, b)
    assert mean == pytest.approx(float((a - b).mean())) and lo < mean < hi < 0
    assert cr.paired_difference(a, a) == (0.0, 0.0, 0.0)
    # a folder that is not a finished run: one line, no traceback
    (tmp_path / "run").mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "condition_response.py"),
                           str(tmp_path / "run")], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 1 and proc.stderr.startswith("condition_response: ")
    assert "not a finished DSPO run folder" in proc.stderr and "Traceback" not in proc.stderr


def test_condition_response_end_to_end_on_a_tiny_real_run(carcircle_dataset, tmp_path):
    """A tiny DSPO run on a CarCircle dataset recorded in the simulator (to its diffusion model),
    then the script: 3 conditions x 4 guidance weights, the unconditional cells alike, the real
    rows, the paired differences, written atomically to --table."""
    from dspo_ray.dspo.config import profile_config
    from dspo_ray.dspo.pipeline import run_dspo

    config = profile_config("quick", task="CarCircle", dataset=str(carcircle_dataset), eval_workers=1,
                            stop_after="diffusion",
                            **{"split.n_safe": 5, "split.n_unlabelled": 40, "discriminator.steps": 6,
                               "diffusion.steps": 10})
    run = tmp_path / "dspo-CarCircle-tiny"
    run_dspo(config, run)
    table = tmp_path / "response.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "condition_response.py"),
                           str(run), "--windows", "4", "--table", str(table)],
                          capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    grid_text, paired_text = table.read_text().split("\n\n")
    grid = [line.split(" | ") for line in grid_text.splitlines()[2:]]
    generated = [row for row in grid if row[1] == "learned"]
    assert len(generated) == 12 and {row[3] for row in generated} == {"0", "1", "2", "4"}
    unconditional = {(row[4], row[5], row[6]) for row in generated if row[3] == "0"}
    assert len(unconditional) == 1  # weight 0 drops the condition: the same windows whatever it asks
    assert all(0 <= float(row[4]) <= 1 for row in generated)
    assert [row[2].rsplit(" (", 1)[0] for row in grid if row[1] == "real"] == [
        "safe demonstrations", "unlabelled, safe (truth)", "unlabelled, unsafe (truth)"]
    paired = paired_text.splitlines()[2:]
    assert len(paired) == 6  # weights 1, 2 (the run's own) and 4, two pairs each
    assert {tuple(line.split(" | ")[2:4]) for line in paired} == {
        (w, pair) for w in ("1", "2", "4") for pair in ("high - low", "as run - low")}
