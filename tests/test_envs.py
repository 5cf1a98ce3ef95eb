"""``dspo_ray.envs.make_env`` on the real simulators (no mocks), and the simulator patch script.

Checks the registry's dimensions and episode lengths against the installed simulators. MetaDrive
allows one live environment per process, so every test closes what it makes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from dspo_ray.envs import make_env
from dspo_ray.tasks import TASKS, action_bounds, get_task

REPO = Path(__file__).resolve().parents[1]
# safety-gymnasium 0.4.0 passes a 1-element array as a MuJoCo joint id (fine with numpy < 2)
pytestmark = pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")
# one task per suite for the two-environment determinism check
DETERMINISM_TASKS = ["PointGoal1", "AntRun", "easydense"]


def _rollout(env, n_steps=5, reset_seed=None):
    """Reset, then ``n_steps`` fixed pseudo-random actions; returns obs, rewards, costs, infos."""
    obs, info = env.reset(seed=reset_seed)
    rng = np.random.default_rng(123)
    space = env.action_space
    observations, rewards, costs, steps = [obs], [], [], []
    for _ in range(n_steps):
        action = rng.uniform(space.low, space.high).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(reward)
        costs.append(info["cost"])
        steps.append((terminated, truncated, info))
        if terminated or truncated:
            break
    return observations, rewards, costs, steps


@pytest.mark.parametrize("name", list(TASKS))
def test_make_env_contract(name):
    spec = get_task(name)
    env = make_env(name, seed=7)
    try:
        assert isinstance(env, gymnasium.Env)
        assert isinstance(env.action_space, gymnasium.spaces.Box)
        assert env.action_space.shape == (spec.act_dim,)
        low, high = action_bounds(spec)  # what learners clip to without making an environment
        np.testing.assert_array_equal(env.action_space.low, low)
        np.testing.assert_array_equal(env.action_space.high, high)
        assert env.observation_space.shape == (spec.obs_dim,)

        observations, rewards, costs, steps = _rollout(env)
        for obs in observations:
            assert obs.shape == (spec.obs_dim,) and obs.dtype == np.float32
            assert np.all(np.isfinite(obs))
        for reward, cost, (terminated, truncated, info) in zip(rewards, costs, steps):
            assert isinstance(reward, float) and np.isfinite(reward)
            assert isinstance(cost, float) and cost >= 0.0 and info["cost"] == cost
            assert isinstance(terminated, bool) and isinstance(truncated, bool)

        # the first reset() used make_env's seed: an explicit reset with it starts the same way (up
        # to float noise: some physics state survives a reset). Not for Bullet-Safety-Gym: its reset
        # keeps the previous episode's joint velocities and motor commands in the first observation.
        if spec.suite != "BulletGym":
            again, _ = env.reset(seed=7)
            np.testing.assert_allclose(again, observations[0], rtol=1e-5, atol=1e-6)
    finally:
        env.close()


@pytest.mark.parametrize("name", DETERMINISM_TASKS)
def test_same_seed_same_trajectory(name):
    runs = []
    for _ in range(2):
        env = make_env(name, seed=11)  # one after the other: MetaDrive allows one at a time
        try:
            runs.append(_rollout(env))
            other_start, _ = env.reset(seed=12)
        finally:
            env.close()
    (obs_a, rew_a, cost_a, _), (obs_b, rew_b, cost_b, _) = runs
    np.testing.assert_array_equal(np.stack(obs_a), np.stack(obs_b))
    assert rew_a == rew_b and cost_a == cost_b
    if get_task(name).suite != "MetaDrive":  # MetaDrive: one fixed map; the seed only moves traffic
        assert not np.allclose(obs_a[0], other_start), "another seed should start elsewhere"


def test_truncated_at_max_episode_steps():
    spec = get_task("DroneRun")
    env = make_env(spec, seed=0)
    try:
        env.reset()
        for t in range(1, spec.max_episode_steps + 1):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated:
                pytest.skip(f"terminated at step {t} before the time limit")
            assert truncated == (t == spec.max_episode_steps), f"truncated={truncated} at step {t}"
    finally:
        env.close()


def test_unknown_task_is_a_clear_error():
    with pytest.raises(KeyError, match="valid tasks are"):
        make_env("NoSuchTask", seed=0)


def test_patch_script_is_idempotent():
    """The venv is already patched (setup_env.sh ran it): a second run must change nothing."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "patch_simulators.py")],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "nothing to change" in result.stdout, result.stdout
    assert "[patch] safety_gymnasium/" not in result.stdout
    assert "[patch] metadrive/" not in result.stdout
