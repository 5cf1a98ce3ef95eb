"""One-step dynamics models fitted on the learner's trajectories (no cost anywhere in them).

The forward model (s, a) -> s' has two uses. ``benchmarks/stage2_dynamics.py`` scores generated
windows by how far each step is from what the model predicts (a window the simulator could not
have produced scores far above the real windows). ``generation.consistency: dynamics_rollout``
makes the generated windows consistent by construction: each window keeps its first state and its
actions, and its later states are those the model predicts from them, step after step
(``rollout``). The inverse model (s, s') -> a serves ``generation.consistency: inverse_dynamics``,
the other way round: the generated states are kept and each step's action is the one that leads
from a state to the next (``relabel_actions``; Decision Diffuser, Ajay et al. 2023, generates
states only and takes its actions from such a model).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dspo_ray.dspo.windows import RaggedTrajectories


def transitions(traj: RaggedTrajectories, which: np.ndarray) -> tuple[np.ndarray, ...]:
    """(s, a, s') of every step of the chosen trajectories but their last."""
    rows = np.concatenate([np.arange(s, s + n - 1) for s, n, w in
                           zip(traj.starts, traj.lengths, which) if w and n > 1])
    return traj.observations[rows], traj.actions[rows], traj.observations[rows + 1]


class _StandardisedMLP(nn.Module):
    """An MLP from x to y, both standardised with the training data's mean and spread."""

    def __init__(self, x: np.ndarray, y: np.ndarray, hidden: int):
        super().__init__()
        self.register_buffer("x_mean", torch.as_tensor(x.mean(0)))
        self.register_buffer("x_std", torch.as_tensor(x.std(0) + 1e-6))
        self.register_buffer("y_mean", torch.as_tensor(y.mean(0)))
        self.register_buffer("y_std", torch.as_tensor(y.std(0) + 1e-6))
        self.net = nn.Sequential(nn.Linear(x.shape[1], hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, y.shape[1]))

    def _standardised(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std)

    def _error(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per row: the mean over y's dimensions of |predicted - actual|, in units of each
        dimension's spread."""
        return (self._standardised(x) - (y - self.y_mean) / self.y_std).abs().mean(-1)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.y_mean + self.y_std * self._standardised(x)


class Dynamics(_StandardisedMLP):
    """s' - s predicted from (s, a)."""

    def __init__(self, s: np.ndarray, a: np.ndarray, s_next: np.ndarray, hidden: int = 256):
        super().__init__(np.concatenate([s, a], 1), s_next - s, hidden)

    def error(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        """Per step: the mean over state dimensions of |predicted - actual| step change, in units
        of that dimension's step-change spread."""
        return self._error(torch.cat([s, a], -1), s_next - s)

    def next_state(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + self._predict(torch.cat([s, a], -1))


class InverseDynamics(_StandardisedMLP):
    """a predicted from (s, s' - s)."""

    def __init__(self, s: np.ndarray, a: np.ndarray, s_next: np.ndarray, hidden: int = 256):
        super().__init__(np.concatenate([s, s_next - s], 1), a, hidden)

    def error(self, s: torch.Tensor, a: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        """Per step: the mean over action dimensions of |predicted - actual| action, in units of
        that dimension's spread."""
        return self._error(torch.cat([s, s_next - s], -1), a)

    def action(self, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
        return self._predict(torch.cat([s, s_next - s], -1))


def fit_dynamics(s: np.ndarray, a: np.ndarray, s_next: np.ndarray, steps: int, seed: int,
                 model_class: type[Dynamics] | type[InverseDynamics] = Dynamics
                 ) -> Dynamics | InverseDynamics:
    """Adam on the squared standardised error, batches of 256 transitions drawn with ``seed``.
    ``model_class``: the forward model (``Dynamics``) or the inverse one."""
    torch.manual_seed(seed)
    model = model_class(s, a, s_next)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    s_t, a_t, n_t = (torch.as_tensor(v) for v in (s, a, s_next))
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(s_t), 256))
        loss = model.error(s_t[idx], a_t[idx], n_t[idx]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@torch.no_grad()
def window_errors(model: Dynamics, observations: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Each (n, horizon, dim) window's mean one-step error over its horizon - 1 transitions."""
    s, a = torch.as_tensor(observations), torch.as_tensor(actions)
    return model.error(s[:, :-1], a[:, :-1], s[:, 1:]).mean(-1).numpy()


@torch.no_grad()
def rollout(model: Dynamics, first_states: np.ndarray, actions: np.ndarray,
            state_low: np.ndarray, state_high: np.ndarray) -> np.ndarray:
    """(n, horizon, obs_dim) states: each window's first state, then the model's next state
    from the previous one and the window's action, kept within [state_low, state_high] (the
    learner's data's range: an open-loop model can wander where no data ever was)."""
    low, high = torch.as_tensor(state_low), torch.as_tensor(state_high)
    a = torch.as_tensor(actions)
    states = [torch.as_tensor(first_states)]
    for t in range(a.shape[1] - 1):
        states.append(torch.clamp(model.next_state(states[-1], a[:, t]), low, high))
    return torch.stack(states, 1).numpy().astype(np.float32)


@torch.no_grad()
def relabel_actions(model: InverseDynamics, observations: np.ndarray, action_low: np.ndarray,
                    action_high: np.ndarray) -> np.ndarray:
    """(n, horizon - 1, act_dim): for each step of each window but the last (it has no next
    state), the action the inverse model says leads to the next state, clipped to the bounds."""
    s = torch.as_tensor(observations)
    actions = model.action(s[:, :-1], s[:, 1:]).numpy()
    return np.clip(actions, action_low, action_high).astype(np.float32)
