"""CQL (Kumar et al., 2020): SAC whose critics are pushed down on out-of-data actions.

Offline RL on the task reward only, over every trajectory. The critic loss adds
alpha_cql * (logsumexp_a Q(s, a) - Q(s, a_data)), the logsumexp estimated by importance sampling
over uniform actions and the current policy's actions at s and s' (the CQL(H) variant).
Defaults follow the authors and CORL's reimplementation: cql_alpha 10, 10 sampled actions,
temperature 1, policy lr 3e-5, Q lr 3e-4, tau 5e-3, discount 0.99, automatic entropy tuning with
target -act_dim, no entropy in the backup, 3 x 256 MLPs, batch 256, and the first 10% of the steps
(CORL: 100k of 1M) train the actor by behaviour cloning before it maximises Q.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dspo_ray.config import bounded
from dspo_ray.baselines.common import (Log, QNetwork, TanhGaussianActor, TransitionSampler,
                                       action_bounds, all_observations, seed_everything,
                                       soft_update, train_steps)
from dspo_ray.data import CostLabelFreeData
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class CQLConfig:
    steps: int = bounded(1_000_000, ge=1)
    """Gradient steps (authors: 1M)."""
    batch_size: int = bounded(256, ge=1)
    policy_lr: float = bounded(3e-5, gt=0)
    q_lr: float = bounded(3e-4, gt=0)
    alpha_lr: float = bounded(3e-4, gt=0)
    """Learning rate of the entropy temperature."""
    hidden: tuple[int, ...] = bounded((256, 256, 256), ge=1)
    discount: float = bounded(0.99, ge=0, le=1)
    tau: float = bounded(5e-3, gt=0, le=1)
    cql_alpha: float = bounded(10.0, ge=0)
    """Weight of the conservative term."""
    cql_n_actions: int = bounded(10, ge=1)
    """Actions sampled per state (each of uniform / pi(s) / pi(s')) for the logsumexp."""
    cql_temperature: float = bounded(1.0, gt=0)
    bc_warmup_fraction: float = bounded(0.1, ge=0, le=1)
    """Fraction of the steps in which the actor does behaviour cloning instead of maximising Q."""
    seed: int = bounded(0, ge=0)
    log_every: int = bounded(1000, ge=1)
    device: str = "auto"


class CQLLearner:
    def __init__(self, config: CQLConfig, data: CostLabelFreeData, device: torch.device):
        self.config = config
        task = data.task
        low, high = action_bounds(task)
        obs = all_observations(data.all_trajectories)
        self.act_dim = task.act_dim
        self.actor = TanhGaussianActor(task, config.hidden, low, high)
        self.actor.deterministic.set_observation_stats(obs)
        self.critics = nn.ModuleList(QNetwork(task.obs_dim, task.act_dim, config.hidden)
                                     for _ in range(2))
        for q in self.critics:
            q.set_observation_stats(obs)
        self.actor.to(device)
        self.critics.to(device)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=device, requires_grad=True)
        self.target_entropy = -float(task.act_dim)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.policy_lr)
        self.q_opt = torch.optim.Adam(self.critics.parameters(), lr=config.q_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=config.alpha_lr)
        self.bc_steps = int(config.bc_warmup_fraction * config.steps)
        self.steps = 0

    def _q_on_sampled(self, q: QNetwork, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q at n actions per state: obs (B, o), actions (B, n, a) -> (B, n)."""
        b, n = actions.shape[:2]
        return q(obs.unsqueeze(1).expand(b, n, obs.shape[-1]).reshape(b * n, -1),
                 actions.reshape(b * n, -1)).view(b, n)

    def _sample_n(self, obs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        b = obs.shape[0]
        rep = obs.unsqueeze(1).expand(b, n, obs.shape[-1]).reshape(b * n, -1)
        actions, log_pi = self.actor.sample(rep)
        return actions.view(b, n, -1), log_pi.view(b, n)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        self.steps += 1
        obs, act, next_obs = batch["observations"], batch["actions"], batch["next_observations"]

        # actor and temperature (SAC), behaviour cloning during the warm-up
        new_actions, log_pi = self.actor.sample(obs)
        alpha_loss = -(self.log_alpha * (log_pi + self.target_entropy).detach()).mean()
        alpha = self.log_alpha.exp().detach()
        if self.steps <= self.bc_steps:
            actor_loss = (alpha * log_pi - self.actor.log_prob(obs, act).sum(-1)).mean()
        else:
            q_new = torch.min(*(q(obs, new_actions) for q in self.critics))
            actor_loss = (alpha * log_pi - q_new).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()

        # critics: TD towards r + gamma min Q'(s', a'~pi), plus the conservative term
        with torch.no_grad():
            next_actions, _ = self.actor.sample(next_obs)
            target_q = torch.min(*(q(next_obs, next_actions) for q in self.critics_target))
            target = batch["rewards"] + c.discount * (1 - batch["dones"]) * target_q
            n = c.cql_n_actions
            random_actions = torch.empty(obs.shape[0], n, self.act_dim, device=obs.device).uniform_(-1, 1)
            random_log_density = self.act_dim * math.log(0.5)
            current_actions, current_log_pi = self._sample_n(obs, n)
            next_state_actions, next_log_pi = self._sample_n(next_obs, n)
        td_loss = 0.0
        cql_loss = 0.0
        q_data_mean = 0.0
        for q in self.critics:
            q_data = q(obs, act)
            td_loss = td_loss + (q_data - target).pow(2).mean()
            # importance-sampled logsumexp over actions (CQL(H) with importance sampling)
            cat_q = torch.cat([
                self._q_on_sampled(q, obs, random_actions) - random_log_density,
                self._q_on_sampled(q, obs, next_state_actions) - next_log_pi,
                self._q_on_sampled(q, obs, current_actions) - current_log_pi,
            ], dim=1)
            ood = torch.logsumexp(cat_q / c.cql_temperature, dim=1) * c.cql_temperature
            cql_loss = cql_loss + c.cql_alpha * (ood - q_data).mean()
            q_data_mean = q_data_mean + q_data.mean().item() / 2
        q_loss = td_loss + cql_loss
        self.q_opt.zero_grad()
        q_loss.backward()
        self.q_opt.step()
        soft_update(self.critics_target, self.critics, c.tau)
        return {"losses/critic": q_loss.item(), "losses/td": td_loss.item(),
                "losses/cql": cql_loss.item(), "losses/actor": actor_loss.item(),
                "values/alpha": alpha.item(), "values/q_mean": q_data_mean}


def train(config: CQLConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    sampler = TransitionSampler(data.all_trajectories, device)
    learner = CQLLearner(config, data, device)
    train_steps("cql", config, data, workdir, log, vars(learner), generator,
                lambda: learner.update(sampler.sample(config.batch_size, generator)))
    return learner.actor.deterministic.cpu().eval()
