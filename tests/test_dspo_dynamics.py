"""The one-step dynamics model (dspo_ray/dspo/dynamics.py): fitted on a known linear system, its
rollout follows the system; rolled windows are consistent with the model by construction."""

import numpy as np
import torch

from dspo_ray.dspo.dynamics import (InverseDynamics, fit_dynamics, relabel_actions, rollout,
                                    transitions, window_errors)
from dspo_ray.dspo.windows import RaggedTrajectories

torch.set_num_threads(1)
A = np.array([[0.9, 0.1], [-0.1, 0.9]], np.float32)
B = np.array([[0.5], [0.2]], np.float32)


def linear_trajectories(n: int, length: int, seed: int) -> RaggedTrajectories:
    """s' = A s + B a with random actions in [-1, 1], states from N(0, 1)."""
    rng = np.random.default_rng(seed)
    obs, act = [], []
    for _ in range(n):
        s = rng.normal(size=2).astype(np.float32)
        a = rng.uniform(-1, 1, (length, 1)).astype(np.float32)
        states = [s]
        for t in range(length - 1):
            states.append(A @ states[-1] + B @ a[t])
        obs.append(np.stack(states))
        act.append(a)
    return RaggedTrajectories(observations=np.concatenate(obs).astype(np.float32),
                              actions=np.concatenate(act), lengths=np.full(n, length),
                              returns=np.zeros(n), is_demo=np.zeros(n, bool))


def test_transitions_pair_each_step_with_the_next_within_a_trajectory():
    traj = linear_trajectories(3, 5, seed=0)
    s, a, s_next = transitions(traj, np.array([True, False, True]))
    assert len(s) == 8  # 4 per chosen trajectory: none crosses from one trajectory to the next
    np.testing.assert_allclose(s_next, s @ A.T + a @ B.T, atol=1e-5)


def test_rollout_of_a_fitted_model_follows_the_true_system_and_stays_in_range():
    traj = linear_trajectories(100, 20, seed=0)
    model = fit_dynamics(*transitions(traj, np.ones(100, bool)), steps=1500, seed=0)
    test = linear_trajectories(10, 8, seed=1)
    windows_obs = test.observations.reshape(10, 8, 2)
    windows_act = test.actions.reshape(10, 8, 1)
    low, high = traj.observations.min(0), traj.observations.max(0)
    # a generator's windows: the true first state and actions, later states scrambled
    scrambled = windows_obs.copy()
    scrambled[:, 1:] = np.random.default_rng(2).normal(size=scrambled[:, 1:].shape)
    rolled = rollout(model, scrambled[:, 0], windows_act, low, high)
    assert rolled.shape == windows_obs.shape and rolled.dtype == np.float32
    np.testing.assert_array_equal(rolled[:, 0], windows_obs[:, 0])
    assert np.abs(rolled - windows_obs).max() < 0.15  # the true trajectory, 7 model steps later
    assert np.abs(scrambled - windows_obs).max() > 1.0
    # consistent with the model by construction (the scrambled windows are far off it)
    assert window_errors(model, rolled, windows_act).max() < 1e-4
    assert window_errors(model, scrambled, windows_act).min() > 0.1
    # states kept in the data's range however far the actions would push them
    pushed = rollout(model, windows_obs[:, 0], np.full_like(windows_act, 50.0), low, high)
    assert (pushed >= low - 1e-6).all() and (pushed <= high + 1e-6).all()
    assert np.isclose(pushed[:, -1], high).any()


def test_inverse_model_recovers_the_actions_of_a_known_system():
    traj = linear_trajectories(100, 20, seed=0)
    model = fit_dynamics(*transitions(traj, np.ones(100, bool)), steps=1500, seed=0,
                         model_class=InverseDynamics)
    test = linear_trajectories(10, 8, seed=1)
    observations, actions = test.observations.reshape(10, 8, 2), test.actions.reshape(10, 8, 1)
    relabelled = relabel_actions(model, observations, np.array([-1.0]), np.array([1.0]))
    assert relabelled.shape == (10, 7, 1) and relabelled.dtype == np.float32  # no action for the last state
    assert np.abs(relabelled - actions[:, :-1]).max() < 0.1
    # clipped to the bounds: states no action in [-0.2, 0.2] connects
    assert np.abs(relabel_actions(model, observations, np.array([-0.2]), np.array([0.2]))).max() <= 0.2 + 1e-6
