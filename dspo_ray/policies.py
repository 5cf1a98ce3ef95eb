"""Policies as evaluation sees them, and the deterministic MLP policy most methods end with.

A policy is any object with ``act(observation) -> action`` (one observation, numpy in and out) and
optionally ``reset(seed)`` at the start of each episode and ``observe(reward)`` after each step
(for return-conditioned sequence policies). Policies must pickle: evaluation runs episodes in
worker processes. :func:`save_policy` writes one to a file; reading it back needs every kind a
method may have saved, so ``load_policy`` is in dspo_ray.saved_policies, above the methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from dspo_ray.io import atomic_path
from torch import nn


@runtime_checkable
class Policy(Protocol):
    def act(self, observation: np.ndarray) -> np.ndarray: ...


class RandomPolicy:
    """Uniform random actions, reseeded per episode so results do not depend on worker count."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.low, self.high = np.asarray(low, np.float32), np.asarray(high, np.float32)
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high).astype(np.float32)


def mlp(sizes: list[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ObservationNormalized(nn.Module):
    """A network whose inputs are normalised with the training data's statistics, kept as
    buffers so that they travel in the checkpoint."""

    def __init__(self, obs_dim: int):
        super().__init__()
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))

    def set_observation_stats(self, observations: np.ndarray) -> None:
        obs = torch.as_tensor(observations, dtype=torch.float32)
        self.obs_mean.copy_(obs.mean(0))
        self.obs_std.copy_(obs.std(0).clamp_min(1e-3))

    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.obs_mean) / self.obs_std


class MLPPolicy(ObservationNormalized):
    """Deterministic policy: normalised observation -> MLP -> tanh -> action bounds."""

    policy_kind = "mlp"  # what save_policy records, for load_policy

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256),
                 action_low: float | np.ndarray = -1.0, action_high: float | np.ndarray = 1.0):
        super().__init__(obs_dim)
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, hidden=tuple(hidden))
        self.net = mlp([obs_dim, *hidden, act_dim])
        low = torch.tensor(np.broadcast_to(action_low, (act_dim,)), dtype=torch.float32)
        high = torch.tensor(np.broadcast_to(action_high, (act_dim,)), dtype=torch.float32)
        self.register_buffer("action_scale", (high - low) / 2)
        self.register_buffer("action_offset", (high + low) / 2)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.net(self.normalize(observations))) * self.action_scale + self.action_offset

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        obs = torch.as_tensor(observation, dtype=torch.float32, device=self.obs_mean.device)
        return self(obs.unsqueeze(0))[0].cpu().numpy()


POLICY_FILE = "policy.pt"
"""A trained policy's file name in a run folder and in a sweep trial's Tune checkpoint."""


def save_policy(path: str | Path, policy: nn.Module) -> Path:
    """Save a policy with its kind (its class's ``policy_kind``) and the config needed to rebuild
    it; written atomically. dspo_ray.saved_policies.load_policy reads it back."""
    state = {k: v.cpu() for k, v in policy.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"kind": policy.policy_kind, "config": policy.config, "state_dict": state}, tmp)
    return Path(path)


class PolicyError(ValueError):
    """A policy that cannot be used: not a policy file, or made for another task."""


def check_policy_fits(policy: object, obs_dim: int, act_dim: int, task_name: str) -> None:
    """Refuse a saved policy whose observation or action size is not the task's."""
    config = getattr(policy, "config", None)
    if not isinstance(config, dict):
        return
    for what, want in (("obs_dim", obs_dim), ("act_dim", act_dim)):
        have = config.get(what)
        if have is not None and int(have) != int(want):
            raise PolicyError(f"the policy was trained for {what}={have}, task {task_name} has "
                              f"{what}={want}; evaluate it on the task it was trained on")
