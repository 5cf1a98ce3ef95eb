"""Behaviour cloning: BC-All (every trajectory) and BC-Safe (the safe demonstrations only).

The paper's BC-All clones the demonstrations plus the unlabelled set; BC-Safe clones only the
demonstrations (the one set known to be safe: with no cost labels, OSRL's "keep trajectories whose
cost return <= limit" filter reduces to exactly this). Deterministic MLP, MSE on actions, as in the
public offline-safe-RL library (OSRL BC: lr 1e-3, batch 512, MLP [256, 256], 100k steps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dspo_ray.config import bounded
from dspo_ray.baselines.common import (Log, TransitionSampler, action_bounds, all_observations,
                                       seed_everything, train_steps)
from dspo_ray.data import CostLabelFreeData
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class BCAllConfig:
    steps: int = bounded(100_000, ge=1)
    """Gradient steps (OSRL BC default)."""
    batch_size: int = bounded(512, ge=1)
    """Transitions per minibatch."""
    lr: float = bounded(1e-3, gt=0)
    """Adam learning rate."""
    hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    """Policy MLP hidden sizes."""
    seed: int = bounded(0, ge=0)
    """Seeds initialisation and minibatch draws."""
    log_every: int = bounded(1000, ge=1)
    """Report losses every this many steps."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda``."""

    data_subset = "all"


@dataclass(frozen=True)
class BCSafeConfig(BCAllConfig):
    data_subset = "safe_demos"


def bc_update(policy: MLPPolicy, optimizer: torch.optim.Optimizer,
              batch: dict[str, torch.Tensor]) -> dict[str, float]:
    loss = (policy(batch["observations"]) - batch["actions"]).pow(2).sum(-1).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return {"losses/bc": loss.item()}


def train(config: BCAllConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    trajectories = data.safe_demos if config.data_subset == "safe_demos" else data.all_trajectories
    sampler = TransitionSampler(trajectories, device)
    low, high = action_bounds(data.task)
    policy = MLPPolicy(data.task.obs_dim, data.task.act_dim, config.hidden, low, high)
    policy.set_observation_stats(all_observations(trajectories))
    policy.to(device)
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.lr)
    train_steps(f"bc_{config.data_subset}", config, data, workdir, log,
                {"policy": policy, "optimizer": optimizer}, generator,
                lambda: bc_update(policy, optimizer, sampler.sample(config.batch_size, generator)))
    return policy.cpu().eval()
