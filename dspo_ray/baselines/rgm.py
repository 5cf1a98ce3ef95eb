"""RGM (Li et al., 2022, "Mind the Gap"): correct an imperfect reward with a few expert
demonstrations, then solve a pessimistic offline RL problem on the corrected reward.

The paper treats the task reward as the imperfect reward and the safe demonstrations as the expert
data. RGM proper is a bi-level optimisation (the upper level fits a reward correction so that the
lower level's DICE-style pessimistic policy matches the expert occupancy). This module implements
its single-level, discriminator-based form, the approximation DICE-style imitation methods use
for the same gap: a classifier D(s, a) separates demonstration transitions from unlabelled ones,
and log D / (1 - D) estimates log d_expert(s, a) / d_data(s, a), the occupancy-ratio signal RGM's
correction is driven by. The corrected reward is

    r'(s, a) = r(s, a) + correction_coef * std(r) * clip(log D / (1 - D), -correction_clip, +correction_clip)

(``std(r)``: the per-step reward std over all transitions, so the correction is in reward units
whatever the task's reward scale), and the lower level is IQL (pessimistic: it never queries Q at
unseen actions) on r', with IQL's defaults. Choosing this over the bi-level version keeps RGM
fast and stable in a sweep; ``correction_coef = 0`` recovers plain IQL.

CDT-V (cdtv.py) reuses :func:`fit_reward_correction` for its transition-level cost estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from dspo_ray.config import bounded
from dspo_ray.baselines.common import (Log, StateActionClassifier, TransitionSampler,
                                       all_observations, emit, seed_everything, train_steps)
from dspo_ray.baselines.iql import IQLConfig, train_iql
from dspo_ray.data import CostLabelFreeData
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class RewardCorrectionConfig:
    discriminator_steps: int = bounded(10_000, ge=1)
    """Gradient steps of the demonstrations-vs-unlabelled classifier."""
    discriminator_batch_size: int = bounded(256, ge=1)
    """Transitions per minibatch from EACH of the two sets (balanced: 15 demos vs hundreds)."""
    discriminator_lr: float = bounded(3e-4, gt=0)
    discriminator_hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    gradient_penalty: float = bounded(10.0, ge=0)
    """Weight of the gradient penalty on interpolated inputs (as in DemoDICE); keeps the
    log-ratio smooth instead of memorising 15 demonstrations."""
    correction_coef: float = bounded(1.0, ge=0)
    """Size of the correction, in units of the per-step reward std."""
    correction_clip: float = bounded(5.0, gt=0)
    """The log-ratio is clipped to +-this before scaling."""
    seed: int = bounded(0, ge=0)
    log_every: int = bounded(1000, ge=1)
    device: str = "auto"


@dataclass(frozen=True)
class RGMConfig(IQLConfig, RewardCorrectionConfig):
    """IQL's options (steps, lrs, expectile, ...) plus the reward-correction options."""


def _sub_config(cls, config):
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def train_discriminator(config: RewardCorrectionConfig, data: CostLabelFreeData,
                        device: torch.device, generator: torch.Generator,
                        log: Log = None, workdir: Path | None = None) -> StateActionClassifier:
    """Logistic regression of "demonstration" (1) vs "unlabelled" (0) on (s, a), balanced batches."""
    task = data.task
    demos = TransitionSampler(data.safe_demos, device)
    unlabelled = TransitionSampler(data.unlabelled, device)
    disc = StateActionClassifier(task.obs_dim, task.act_dim, config.discriminator_hidden)
    disc.set_observation_stats(all_observations(data.all_trajectories))
    disc.to(device)
    opt = torch.optim.Adam(disc.parameters(), lr=config.discriminator_lr)
    n = config.discriminator_batch_size

    def update() -> dict[str, float]:
        pos, neg = demos.sample(n, generator), unlabelled.sample(n, generator)
        logits_pos = disc(pos["observations"], pos["actions"])
        logits_neg = disc(neg["observations"], neg["actions"])
        bce = (F.binary_cross_entropy_with_logits(logits_pos, torch.ones_like(logits_pos))
               + F.binary_cross_entropy_with_logits(logits_neg, torch.zeros_like(logits_neg))) / 2
        loss = bce
        if config.gradient_penalty > 0:
            mix = torch.rand(n, 1, device=device)
            obs = (mix * pos["observations"] + (1 - mix) * neg["observations"]).requires_grad_(True)
            act = (mix * pos["actions"] + (1 - mix) * neg["actions"]).requires_grad_(True)
            grads = torch.autograd.grad(torch.sigmoid(disc(obs, act)).sum(), [obs, act],
                                        create_graph=True)
            norm = torch.cat(grads, -1).norm(dim=-1)
            loss = loss + config.gradient_penalty * (norm - 1).clamp_min(0).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"losses/discriminator": bce.item(),
                "values/d_demos": torch.sigmoid(logits_pos).mean().item(),
                "values/d_unlabelled": torch.sigmoid(logits_neg).mean().item()}

    train_steps("reward_correction", config, data, workdir, log,
                {"discriminator": disc, "optimizer": opt}, generator, update,
                steps=config.discriminator_steps)
    return disc.eval()


@torch.no_grad()
def log_ratio(disc: StateActionClassifier, observations: np.ndarray, actions: np.ndarray,
              clip: float, chunk: int = 65_536) -> np.ndarray:
    """clip(log D / (1 - D)) = clip(logit) for every transition, computed in chunks."""
    device = next(disc.parameters()).device
    out = []
    for i in range(0, len(observations), chunk):
        o = torch.as_tensor(observations[i:i + chunk], dtype=torch.float32, device=device)
        a = torch.as_tensor(actions[i:i + chunk], dtype=torch.float32, device=device)
        out.append(disc(o, a).clamp(-clip, clip).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def fit_reward_correction(config: RewardCorrectionConfig, data: CostLabelFreeData,
                          log: Log = None, workdir: Path | None = None
                          ) -> tuple[StateActionClassifier, np.ndarray, np.ndarray, float]:
    """Train the discriminator; return it, the original and the corrected per-transition rewards
    (in ``stack_transitions(data.all_trajectories)`` order) and the reward unit ``std(r)``."""
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    disc = train_discriminator(config, data, device, generator, log, workdir)
    trajectories = data.all_trajectories
    obs = np.concatenate([t.observations for t in trajectories])
    act = np.concatenate([t.actions for t in trajectories])
    rewards = np.concatenate([t.rewards for t in trajectories]).astype(np.float32)
    unit = float(rewards.std()) or 1.0
    corrected = rewards + config.correction_coef * unit * log_ratio(disc, obs, act, config.correction_clip)
    return disc, rewards, corrected.astype(np.float32), unit


def train(config: RGMConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    _, rewards, corrected, _ = fit_reward_correction(_sub_config(RewardCorrectionConfig, config),
                                                     data, log, workdir)
    emit(log, {"values/reward_mean": rewards.mean(), "values/corrected_reward_mean": corrected.mean()}, 0)
    iql_config = _sub_config(IQLConfig, config)
    if iql_config.normalize_reward:
        # IQL's return-range scaling, measured on the corrected returns
        bounds = np.cumsum([0] + [len(t) for t in data.all_trajectories])
        returns = np.array([corrected[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
        spread = float(returns.max() - returns.min())
        corrected = corrected * (1000.0 / spread if spread > 1e-8 else 1.0)
    return train_iql(iql_config, data, corrected, log, workdir)
