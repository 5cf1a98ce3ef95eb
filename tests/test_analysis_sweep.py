"""Analysis on results that a real tiny sweep produced: BC-All and BC-Safe on the shipped DroneRun
data, 2 configurations x 2 seeds each, on a real local Ray; then the tables, the CLI and the
notebook (run top to bottom with nbclient) on those results."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from dspo_ray.analysis import choose_configurations, load_results, table1
from dspo_ray.analysis.tables import TUNED_SUFFIX

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


@pytest.fixture(scope="module")
def sweep_results(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("analysis-sweep")
    # Ray's socket paths must stay under 108 bytes: a short folder of our own, removed at the end;
    # HOME is the one every in-process Ray of this pytest run shares (Ray caches its auth token)
    from distributed_helpers import ray_home

    ray_root = Path(tempfile.mkdtemp(prefix="dspo-an-"))
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "HOME")}
    os.environ.update(RAY_TMPDIR=str(ray_root), HOME=ray_home())
    import ray

    from dspo_ray.distributed.config import sweep_config_from_dict
    from dspo_ray.distributed.sweep import run_sweep, start_ray

    space = {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}
    config = sweep_config_from_dict({
        "name": "analysis", "tasks": ["DroneRun"], "seeds": [0, 1], "methods": ["bc_all", "bc_safe"],
        "num_samples": 2, "search": {"seed": 0, "n_startup_trials": 2,
                                     "space": {"bc_all": space, "bc_safe": space}},
        "overrides": {m: {"steps": 60, "log_every": 20, "hidden": [32, 32]}
                      for m in ("bc_all", "bc_safe")},
        "eval_episodes": 2, "scheduler": {"type": "fifo"},
        "train": {"num_workers": 0}, "trial": {"cpus": 1, "max_failures": 0},
        "storage": str(root / "results"),
    })
    started = start_ray(None, num_cpus=2)
    try:
        result = run_sweep(config)
    finally:
        if started:
            ray.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        shutil.rmtree(ray_root, ignore_errors=True)
    return Path(result.experiment_path)


def test_tidy_frame_from_a_real_sweep(sweep_results):
    trials, reports = load_results(str(sweep_results))
    assert len(trials) == 8 and (trials["status"] == "finished").all()
    assert set(trials["method"]) == {"bc_all", "bc_safe"} and set(trials["seed"]) == {0, 1}
    assert trials["suite"].eq("BulletGym").all() and trials["params/lr"].nunique() == 4
    assert trials["eval/normalized_reward"].notna().all() and "time/trial_s" in trials
    assert not reports.empty and "losses/bc" in reports
    # each trial names its data and its machine (provenance), one dataset for the task
    assert trials["data/sha256"].nunique() == 1 and trials["data/sha256"].str.len().eq(16).all()
    assert trials["machine/cpu_capability"].notna().all() and trials["machine/torch"].notna().all()
    # training rows every log_every (20) of the 60 steps, as the trial trained: steps 1 to 60
    rows = reports[reports["train/step"].notna()]
    for trial, r in rows.groupby("trial"):
        assert list(r["train/step"]) == [1, 20, 40, 60] and r["losses/bc"].notna().all()
        assert r["progress"].is_monotonic_increasing and "objective" not in r.dropna(axis=1)
    assert set(rows["trial"]) == set(trials["trial"])
    # Tune's progress.csv keeps every column: the training rows' and the evaluation's
    progress = pd.read_csv(next(sweep_results.glob("run_trial_*/progress.csv")))
    assert progress["losses/bc"].notna().sum() >= 4
    assert progress["eval/normalized_cost"].notna().any()
    cells = choose_configurations(trials).set_index("method")
    for method in ("bc_all", "bc_safe"):
        # the chosen configuration is the one with the best mean objective over its seeds, a
        # choice on the simulator's evaluation: the method is labelled tuned
        t = trials[trials["method"] == method]
        best = t.groupby("group")["objective"].mean().idxmax()
        method += TUNED_SUFFIX
        assert cells.loc[method, "group"] == best and cells.loc[method, "seeds"] == 2
        chosen = t[t["group"] == best]
        assert cells.loc[method, "reward_mean"] == pytest.approx(chosen["eval/normalized_reward"].mean())
    md = table1(trials, "md")
    assert "DroneRun" in md and "BulletGym average rank" in md


@pytest.mark.parametrize("fmt, ext", [("md", "md"), ("latex", "tex"), ("html", "html"), ("csv", "csv")])
def test_cli_every_format(sweep_results, tmp_path, fmt, ext):
    plots = fmt == "md"  # plotting is format-independent: draw once
    out = subprocess.run([sys.executable, str(REPO / "analysis/make_tables.py"), "--results",
                          str(sweep_results), "--format", fmt, "--out", str(tmp_path),
                          *([] if plots else ["--no-plots"])],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / f"table1.{ext}").stat().st_size > 0 and (tmp_path / f"table2.{ext}").exists()
    assert (tmp_path / "trials.csv").exists() and (tmp_path / "hyperparameters.csv").exists()
    assert "8 trials (8 finished)" in out.stdout
    digest = load_results(str(sweep_results))[0]["data/sha256"].iloc[0]
    assert digest in (tmp_path / f"provenance.{ext}").read_text()  # the data and machine, per task
    if plots:
        for name in ("reward_vs_cost_DroneRun", "hparam_lr", "learning_curves_DroneRun"):
            assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_a_trials_csv_stands_in_for_its_sweep(sweep_results, tmp_path):
    """The trials.csv the tables wrote, read back (as a committed one is once its sweep folder is
    gone), gives the same Table 1, and joins a sweep folder's trials; a CSV that is not one is a
    one-line error with exit 2."""
    folder_trials = load_results(str(sweep_results))[0]
    csv = tmp_path / "trials.csv"
    folder_trials.to_csv(csv, index=False)
    trials, reports = load_results(str(csv))
    assert reports.empty and len(trials) == 8
    assert table1(trials, "md") == table1(folder_trials, "md")
    # the CSV's trials as more seeds of the same configurations (another sweep): one cell, 4 seeds
    more = folder_trials.assign(sweep="more", seed=folder_trials["seed"] + 2)
    more.to_csv(csv, index=False)
    both = choose_configurations(load_results([str(sweep_results), str(csv)])[0])
    assert (both["seeds"] == 4).all()
    # the same trials on a rebuilt dataset (another digest) must not be pooled with these
    rebuilt = tmp_path / "rebuilt.csv"
    more.assign(**{"data/sha256": "0123456789abcdef"}).to_csv(rebuilt, index=False)
    out = subprocess.run([sys.executable, str(REPO / "analysis/make_tables.py"), "--results",
                          str(sweep_results), "--results", str(rebuilt), "--out", str(tmp_path / "mixed")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "task DroneRun: the results come from 2 different datasets" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "mixed").exists()
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    out = subprocess.run([sys.executable, str(REPO / "analysis/make_tables.py"), "--results",
                          str(bad), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "not a trials.csv of dspo-tables" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "out").exists()


def test_notebook_runs_top_to_bottom(sweep_results, tmp_path):
    nb = nbformat.read(REPO / "analysis/notebooks/results.ipynb", as_version=4)
    nb.cells[0].source = f"RESULTS = {str(sweep_results)!r}\nOUT = {str(tmp_path / 'out')!r}"
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(REPO)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "DroneRun" in html and "average rank" in html
    assert "Data digest" in html  # the provenance table, as dspo-tables writes it
    assert (tmp_path / "out" / "reward_vs_cost_DroneRun.png").exists()


def test_best_result_checkpoint_is_a_policy_that_evaluate_scores(sweep_results):
    from ray.tune import ExperimentAnalysis, ResultGrid

    from dspo_ray.analysis.tables import sweep_summary

    best = ResultGrid(ExperimentAnalysis(str(sweep_results), default_metric="evaluated_objective",
                                         default_mode="max")).get_best_result()
    assert best.checkpoint is not None
    policy = Path(best.checkpoint.path) / "policy.pt"
    trials, _ = load_results(str(sweep_results))
    assert trials["policy"].map(lambda p: Path(p).is_file()).all()  # every trial's checkpoint
    for _, cell in sweep_summary(trials).iterrows():  # each cell's policy: its chosen group's
        assert cell["policy"] in set(trials.loc[trials["group"] == cell["group"], "policy"])
    out = subprocess.run([sys.executable, str(REPO / "experiments/evaluate.py"), "--task",
                          "DroneRun", "--policy", str(policy), "--eval-episodes", "1",
                          "--eval-workers", "1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert '"normalized_cost"' in out.stdout
