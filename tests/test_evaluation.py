"""evaluate() and its CLI in a real simulator (CarCircle: 300-step episodes, fast)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from dspo_ray.envs import make_env
from dspo_ray import evaluation
from dspo_ray.evaluation import evaluate, stop_evaluation_workers
from dspo_ray.policies import MLPPolicy, RandomPolicy, save_policy
from dspo_ray.saved_policies import load_policy

ROOT = Path(__file__).resolve().parents[1]
TASK = "CarCircle"


def test_parallel_equals_sequential_and_is_seeded(monkeypatch):
    env = make_env(TASK, seed=0)
    policy = RandomPolicy(env.action_space.low, env.action_space.high)
    sequential = evaluate(policy, TASK, episodes=4, seed=7, workers=1)
    parallel = evaluate(policy, TASK, episodes=4, seed=7, workers=2)
    assert sequential == parallel
    other = evaluate(policy, TASK, episodes=4, seed=8, workers=1)
    assert other.reward_mean != sequential.reward_mean
    # the automatic choice, with the worker kept from the parallel run and without any
    assert evaluation._WORKERS.running(1)
    assert evaluate(policy, TASK, episodes=4, seed=7) == sequential
    stop_evaluation_workers()
    assert evaluate(policy, TASK, episodes=4, seed=7) == sequential
    assert not evaluation._WORKERS.running(1), "4 short episodes: in-process, no worker started"
    # without workers, where they pay: this process goes on with the stream it began (its first
    # episode timed) while a worker it starts then runs the other streams
    monkeypatch.setattr(evaluation, "WORKER_START_S", 0.0)
    assert evaluate(policy, TASK, episodes=4, seed=7) == sequential
    assert evaluation._WORKERS.running(1)
    stop_evaluation_workers()
    assert sequential.episodes == 4 and sequential.length_mean == 300  # CarCircle never terminates early
    assert sequential.safe == (sequential.normalized_cost <= 1)


def test_saved_policy_round_trip_and_cli(tmp_path):
    torch.manual_seed(0)
    policy = MLPPolicy(8, 2, hidden=(16,))
    policy.set_observation_stats(np.random.default_rng(0).normal(size=(100, 8)))
    path = save_policy(tmp_path / "policy.pt", policy)
    obs = np.ones(8, np.float32)
    np.testing.assert_allclose(load_policy(path).act(obs), policy.act(obs))
    out = subprocess.run([sys.executable, str(ROOT / "experiments/evaluate.py"), "--task", TASK,
                          "--policy", str(path), "--eval-episodes", "2", "--eval-workers", "1"],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    direct = evaluate(load_policy(path), TASK, episodes=2, seed=0, workers=1)
    assert result["normalized_reward"] == direct.normalized_reward
    assert result["safe"] == direct.safe


def test_cli_bad_input_fails_clearly(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, str(ROOT / "experiments/evaluate.py"), *args],
                              capture_output=True, text=True)

    bad_task = run("--task", "CarCirle", "--eval-episodes", "1")
    assert bad_task.returncode == 2 and "unknown task 'CarCirle'" in bad_task.stderr
    # the old spelling still works, with a warning
    old = run("--task", "CarCirle", "--episodes", "1")
    assert old.returncode == 2 and "--episodes is deprecated; use --eval-episodes" in old.stderr
    missing = run("--task", TASK, "--policy", str(tmp_path / "nope.pt"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    bad_file = run("--task", TASK, "--policy", str(junk))
    assert bad_file.returncode == 2 and "not a dspo-ray policy file" in bad_file.stderr


def test_metadrive_evaluates_from_a_thread_as_in_a_tune_trial():
    """A Tune trial runs in a thread; MetaDrive's reset installs a SIGINT handler, which only a
    main thread may: evaluate must run its episodes in a process of their own there."""
    import threading

    from dspo_ray.tasks import action_bounds, get_task

    low, high = action_bounds(get_task("hardsparse"))
    policy = RandomPolicy(low, high)
    out = {}

    def run():
        try:
            out["result"] = evaluate(policy, "hardsparse", episodes=1, seed=0, workers=1)
        except Exception as e:  # noqa: BLE001 - reported below
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=300)
    assert "error" not in out, out.get("error")
    assert out["result"].episodes == 1


def test_kept_workers_end_when_their_parent_is_killed():
    """Kept evaluation workers outlive each evaluation, so they must not outlive a parent that
    dies without cleaning up (a Ray trial's process is killed): they exit within seconds."""
    import time

    parent = subprocess.run([sys.executable, "-c", (
        "import os, multiprocessing as mp\n"
        "from dspo_ray.evaluation import start_evaluation_workers\n"
        "assert start_evaluation_workers('CarCircle', 3, wait=True) == 2\n"
        "print(' '.join(str(p.pid) for p in mp.active_children()), flush=True)\n"
        "os._exit(0)  # no atexit, no pool shutdown: as if killed\n")],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=120)
    pids = [int(p) for p in parent.stdout.split()]
    assert len(pids) == 2  # the two workers

    def alive(pid: int) -> bool:  # a zombie (exited, not yet reaped by init) counts as ended
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return False
        return "\nState:\tZ" not in status

    deadline = time.monotonic() + 20
    while any(map(alive, pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(alive, pids)), "orphaned evaluation workers kept running"
