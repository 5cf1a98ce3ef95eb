"""TD3+BC (Fujimoto & Gu, 2021): TD3 with a behaviour-cloning term in the actor loss.

Offline RL on the task reward only, over every trajectory (demonstrations + unlabelled): the data
has no costs. Defaults are the authors' (and CORL's): alpha 2.5, discount 0.99, tau 0.005, target
policy noise 0.2 clipped at 0.5, actor updated every 2 critic steps, lr 3e-4, batch 256, [256, 256].
States are normalised inside the networks with the data's statistics (the authors normalise too).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch

from dspo_ray.config import bounded
from dspo_ray.baselines.common import (Log, QNetwork, TransitionSampler, action_bounds,
                                       all_observations, seed_everything, soft_update, train_steps)
from dspo_ray.data import CostLabelFreeData
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class TD3BCConfig:
    steps: int = bounded(1_000_000, ge=1)
    """Gradient steps (authors: 1M)."""
    batch_size: int = bounded(256, ge=1)
    actor_lr: float = bounded(3e-4, gt=0)
    critic_lr: float = bounded(3e-4, gt=0)
    hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    """Actor and critic MLP hidden sizes."""
    discount: float = bounded(0.99, ge=0, le=1)
    tau: float = bounded(0.005, gt=0, le=1)
    """Target network soft-update rate."""
    policy_noise: float = bounded(0.2, ge=0)
    """Std of the target policy smoothing noise (in action units; actions lie in [-1, 1])."""
    noise_clip: float = bounded(0.5, ge=0)
    policy_freq: int = bounded(2, ge=1)
    """Actor and target updates every this many critic updates."""
    alpha: float = bounded(2.5, ge=0)
    """BC trade-off: actor loss = -lambda Q + BC, lambda = alpha / mean|Q|."""
    seed: int = bounded(0, ge=0)
    log_every: int = bounded(1000, ge=1)
    device: str = "auto"


class TD3BCLearner:
    """Actor, twin critics, their targets and optimisers; ``update`` is one TD3+BC step."""

    def __init__(self, config: TD3BCConfig, data: CostLabelFreeData, device: torch.device):
        self.config = config
        task = data.task
        low, high = action_bounds(task)
        obs = all_observations(data.all_trajectories)
        self.actor = MLPPolicy(task.obs_dim, task.act_dim, config.hidden, low, high)
        self.critics = torch.nn.ModuleList(QNetwork(task.obs_dim, task.act_dim, config.hidden)
                                           for _ in range(2))
        self.actor.set_observation_stats(obs)
        for q in self.critics:
            q.set_observation_stats(obs)
        self.actor.to(device)
        self.critics.to(device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr)
        self.low = torch.as_tensor(low, device=device)
        self.high = torch.as_tensor(high, device=device)
        self.steps = 0
        self.last_actor: dict[str, float] = {}

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        self.steps += 1
        obs, act, next_obs = batch["observations"], batch["actions"], batch["next_observations"]
        with torch.no_grad():
            noise = (torch.randn_like(act) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_act = torch.max(torch.min(self.actor_target(next_obs) + noise, self.high), self.low)
            target_q = torch.min(*(q(next_obs, next_act) for q in self.critics_target))
            target = batch["rewards"] + c.discount * (1 - batch["dones"]) * target_q
        q_values = [q(obs, act) for q in self.critics]
        critic_loss = sum((qv - target).pow(2).mean() for qv in q_values)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        if self.steps % c.policy_freq == 0:
            pi = self.actor(obs)
            q = self.critics[0](obs, pi)
            lam = c.alpha / q.abs().mean().detach()
            bc = (pi - act).pow(2).mean()
            actor_loss = -lam * q.mean() + bc
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.actor_target, self.actor, c.tau)
            soft_update(self.critics_target, self.critics, c.tau)
            self.last_actor = {"losses/actor": actor_loss.item(), "losses/actor_bc": bc.item()}
        return {"losses/critic": critic_loss.item(), "values/q_mean": q_values[0].mean().item(),
                **self.last_actor}


def train(config: TD3BCConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    sampler = TransitionSampler(data.all_trajectories, device)
    learner = TD3BCLearner(config, data, device)
    train_steps("td3bc", config, data, workdir, log, vars(learner), generator,
                lambda: learner.update(sampler.sample(config.batch_size, generator)))
    return learner.actor.cpu().eval()
