"""IQL (Kostrikov et al., 2021): expectile value learning + advantage-weighted regression.

Offline RL on the task reward only, over every trajectory. Never evaluates Q at unseen actions:
V is the tau-expectile of Q over the data's actions, Q regresses on r + gamma V(s'), and the policy
clones the data's actions weighted by exp(beta * (Q - V)). Defaults are the authors' locomotion
settings (also CORL's): expectile 0.7, beta 3.0, discount 0.99, tau 0.005, lr 3e-4, batch 256,
[256, 256], advantage weights capped at 100, actor lr cosine-decayed, rewards scaled by
1000 / (max return - min return). The policy is a Gaussian with a tanh-bounded mean and a
state-independent std; its mean (an MLPPolicy) is what gets evaluated.

RGM (rgm.py) reuses :class:`IQLLearner` on its corrected reward.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dspo_ray.config import bounded
from dspo_ray.baselines.common import (Log, QNetwork, TransitionSampler, ValueNetwork,
                                       action_bounds, all_observations, normal_log_prob,
                                       return_range_scale, seed_everything, soft_update,
                                       train_steps)
from dspo_ray.data import CostLabelFreeData, Trajectory
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class IQLConfig:
    steps: int = bounded(1_000_000, ge=1)
    """Gradient steps (authors: 1M)."""
    batch_size: int = bounded(256, ge=1)
    actor_lr: float = bounded(3e-4, gt=0)
    q_lr: float = bounded(3e-4, gt=0)
    value_lr: float = bounded(3e-4, gt=0)
    hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    discount: float = bounded(0.99, ge=0, le=1)
    tau: float = bounded(0.005, gt=0, le=1)
    """Target Q soft-update rate."""
    expectile: float = bounded(0.7, gt=0, lt=1)
    """V fits this expectile of Q(s, a) over the data's actions (0.5 = SARSA mean)."""
    beta: float = bounded(3.0, ge=0)
    """Inverse temperature of the advantage weights exp(beta * A)."""
    max_weight: float = bounded(100.0, gt=0)
    """Cap on the advantage weights."""
    normalize_reward: bool = True
    """Scale rewards by 1000 / (max return - min return) (IQL's locomotion setting)."""
    seed: int = bounded(0, ge=0)
    log_every: int = bounded(1000, ge=1)
    device: str = "auto"


class GaussianActor(nn.Module):
    """N(mean(s), diag(exp(log_std))): the mean is a tanh-bounded MLPPolicy (what is evaluated)."""

    def __init__(self, mean: MLPPolicy):
        super().__init__()
        self.mean = mean
        self.log_std = nn.Parameter(torch.zeros(mean.config["act_dim"]))

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        std = self.log_std.clamp(-20.0, 2.0).exp()
        return normal_log_prob(actions, self.mean(observations), std).sum(-1)


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    weight = torch.where(diff > 0, expectile, 1 - expectile)
    return (weight * diff.pow(2)).mean()


class IQLLearner:
    """Twin Q, target Q, V and the Gaussian actor; ``update`` is one IQL step."""

    def __init__(self, config: IQLConfig, task, trajectories: tuple[Trajectory, ...],
                 device: torch.device):
        self.config = config
        low, high = action_bounds(task)
        obs = all_observations(trajectories)
        self.actor = GaussianActor(MLPPolicy(task.obs_dim, task.act_dim, config.hidden, low, high))
        self.actor.mean.set_observation_stats(obs)
        self.critics = nn.ModuleList(QNetwork(task.obs_dim, task.act_dim, config.hidden)
                                     for _ in range(2))
        self.value = ValueNetwork(task.obs_dim, config.hidden)
        for net in (*self.critics, self.value):
            net.set_observation_stats(obs)
        for net in (self.actor, self.critics, self.value):
            net.to(device)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.actor_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.actor_opt, max(config.steps, 1))
        self.q_opt = torch.optim.Adam(self.critics.parameters(), lr=config.q_lr)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=config.value_lr)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        obs, act = batch["observations"], batch["actions"]
        with torch.no_grad():
            target_q = torch.min(*(q(obs, act) for q in self.critics_target))
        # V: expectile of the (target) Q over the data's actions
        value = self.value(obs)
        value_loss = expectile_loss(target_q - value, c.expectile)
        self.value_opt.zero_grad()
        value_loss.backward()
        self.value_opt.step()

        # Q: one-step TD towards r + gamma V(s')
        with torch.no_grad():
            target = batch["rewards"] + c.discount * (1 - batch["dones"]) * self.value(
                batch["next_observations"])
        q_loss = sum((q(obs, act) - target).pow(2).mean() for q in self.critics) / 2
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        soft_update(self.critics_target, self.critics, c.tau)

        # policy: advantage-weighted regression on the data's actions
        advantage = (target_q - value.detach())
        weights = torch.exp(c.beta * advantage).clamp(max=c.max_weight)
        actor_loss = -(weights * self.actor.log_prob(obs, act)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self.actor_schedule.step()
        return {"losses/value": value_loss.item(), "losses/q": q_loss.item(),
                "losses/actor": actor_loss.item(), "values/advantage_mean": advantage.mean().item()}


def train_iql(config: IQLConfig, data: CostLabelFreeData, rewards: np.ndarray, log: Log,
              workdir: Path | None) -> MLPPolicy:
    """IQL on given per-transition rewards (in ``stack_transitions(data.all_trajectories)`` order)."""
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    trajectories = data.all_trajectories
    sampler = TransitionSampler(trajectories, device, rewards=rewards)
    learner = IQLLearner(config, data.task, trajectories, device)
    train_steps("iql", config, data, workdir, log, vars(learner), generator,
                lambda: learner.update(sampler.sample(config.batch_size, generator)),
                inputs=rewards)
    return learner.actor.mean.cpu().eval()


def train(config: IQLConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    trajectories = data.all_trajectories
    rewards = np.concatenate([t.rewards for t in trajectories]).astype(np.float32)
    if config.normalize_reward:
        rewards = rewards * return_range_scale(trajectories)
    return train_iql(config, data, rewards, log, workdir)
