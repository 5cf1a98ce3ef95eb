"""`experiments/sweep.py --resume` after the driver was killed (SIGKILL, as by an OOM killer or a
lost SSH session): the sweep finishes with every trial that had finished kept as it was, and no
configuration run twice. Real CLI processes, each with its own embedded local Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
LINEAR = "distributed_helpers:linear_method"


def _env(ray_root: Path) -> dict:
    env = dict(os.environ)
    env.update(RAY_TMPDIR=str(ray_root), HOME=str(ray_root / "home"),
               PYTHONPATH=f"{TESTS}:{REPO}:{env.get('PYTHONPATH', '')}")
    (ray_root / "home").mkdir(exist_ok=True)
    return env


@pytest.fixture
def ray_root():
    # short: Ray's socket paths under RAY_TMPDIR must stay below 107 bytes
    root = Path(tempfile.mkdtemp(prefix="dspo-rr-", dir="/tmp"))
    yield root
    _kill_leftovers(root)
    shutil.rmtree(root, ignore_errors=True)


def _completed(exp: Path) -> dict[str, str]:
    """trial folder -> its result.json text, for trials whose last report says completed."""
    out = {}
    for d in exp.glob("run_trial_*"):
        f = d / "result.json"
        if f.exists():
            text = f.read_text()
            lines = text.strip().splitlines()
            if lines and json.loads(lines[-1]).get("completed"):
                out[d.name] = text
    return out


def _kill_leftovers(root: Path) -> None:
    """Ray processes of the killed driver's cluster, found by their RAY_TMPDIR (a folder this
    test created: only processes this test started)."""
    marker = str(root).encode()
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            cmdline = (pid_dir / "cmdline").read_bytes()
            environ = (pid_dir / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or marker in environ:
            try:
                os.kill(int(pid_dir.name), signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_resume_after_killed_driver_keeps_finished_trials(tmp_path, ray_root):
    cfg = {
        "name": "resumable", "tasks": ["CarCircle"], "seeds": [0], "methods": [LINEAR],
        "num_samples": 4,
        "search": {"seed": 3, "n_startup_trials": 2,
                   "space": {LINEAR: {"lr": {"type": "loguniform", "low": 0.02, "high": 0.5}}}},
        "overrides": {LINEAR: {"steps": 10, "sleep_s": 2.0}},
        "train": {"num_workers": 0}, "trial": {"cpus": 1, "max_failures": 0},
        "scheduler": {"type": "fifo"}, "max_concurrent_trials": 1,
        "storage": str(tmp_path / "results"),
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(cfg))
    exp = tmp_path / "results" / "resumable"
    cli = [sys.executable, str(REPO / "experiments" / "sweep.py"), "--config", str(path)]
    env = _env(ray_root)

    driver = subprocess.Popen(cli, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(_completed(exp)) < 2 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert len(_completed(exp)) >= 2, "two trials should have finished before the kill"
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and what it started, nothing else
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        _kill_leftovers(ray_root)
    before = _completed(exp)
    assert 2 <= len(before) < 4, "the kill should interrupt the sweep"
    time.sleep(1)

    # an explicit name that is taken: a fresh run refuses to mix into it, before Ray starts
    again = subprocess.run(cli + ["--name", "resumable"], env=env, cwd=REPO, capture_output=True,
                           text=True, timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr

    resumed = subprocess.run(cli + ["--resume"], env=env, cwd=REPO, capture_output=True,
                             text=True, timeout=240)
    _kill_leftovers(ray_root)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = _completed(exp)
    assert len(after) == 4
    for name, text in before.items():  # finished trials kept, not rerun (same reports)
        assert after[name] == text
    trials = pd.read_csv(exp / "trials.csv")
    assert len(trials) == 4 and (trials["status"] == "finished").all()
    assert trials["group"].is_unique and trials["params/lr"].nunique() == 4
    assert "CarCircle" in resumed.stdout and "trials: 4 (4 finished" in resumed.stdout

    # the cell's Optuna study, in the sweep folder, holds every configuration Tune ran: the
    # latest Optuna trial of each group (a group asked again after the kill has two) has its
    # parameters and objective; nothing is left running
    import optuna

    study = optuna.load_study(study_name=f"{LINEAR}/CarCircle",
                              storage=f"sqlite:///{exp}/optuna.db")
    assert not study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
    latest = {t.user_attrs["group"]: t for t in study.trials}
    for _, row in trials.iterrows():
        assert latest[row["group"]].state == optuna.trial.TrialState.COMPLETE
        assert latest[row["group"]].params["lr"] == pytest.approx(row["params/lr"])
        assert latest[row["group"]].value == pytest.approx(row["objective"])
