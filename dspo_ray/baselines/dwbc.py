"""DWBC (Xu et al., 2022): behaviour cloning weighted by a positive-unlabelled discriminator.

The paper maps its setting onto DWBC's: the safe demonstrations are the expert set, the unlabelled
trajectories the mixed-quality set. A discriminator d(s, a, log pi(a|s)) in [0.1, 0.9] learns
"expert" vs "mixed" with the positive-unlabelled loss (eta = the assumed share of expert-like data
in the mixed set); the policy's log-likelihood is weighted by it:

    d_loss = E_e[-log d] + E_o[-log(1 - d)] / eta + E_e[log(1 - d)]
    p_loss = alpha E_e[-log pi] - E_e[-log pi (eta / (d (1 - d)) + 1)] + E_o[-log pi (1 / (1 - d) - 1)]

with mixed-set weights zeroed where d < 0.5. Defaults follow the authors' code (also used by the
paper through RGM's repository): alpha 7.5, eta 0.5, lr 1e-4 for both networks, actor weight decay
0.005, discriminator updated every 100 steps, log pi clipped to [-20, 10] and scaled to [0, 1]
before entering the discriminator, batch 256 from each set, tanh-Gaussian actor, [256, 256].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dspo_ray.config import ConfigError, bounded
from dspo_ray.baselines.common import (Log, StateActionClassifier, TanhGaussianActor,
                                       TransitionSampler, action_bounds, all_observations,
                                       seed_everything, train_steps)
from dspo_ray.data import CostLabelFreeData
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import resolve_device

LOG_PI_MIN, LOG_PI_MAX = -20.0, 10.0


@dataclass(frozen=True)
class DWBCConfig:
    steps: int = bounded(100_000, ge=1)
    """Gradient steps."""
    batch_size: int = bounded(256, ge=1)
    """Transitions per minibatch from EACH of the demonstrations and the unlabelled set."""
    actor_lr: float = bounded(1e-4, gt=0)
    discriminator_lr: float = bounded(1e-4, gt=0)
    actor_weight_decay: float = bounded(0.005, ge=0)
    hidden: tuple[int, ...] = bounded((256, 256), ge=1)
    alpha: float = bounded(7.5, ge=0)
    """Weight of plain BC on the demonstrations."""
    eta: float = bounded(0.5, gt=0, lt=1)
    """Positive-unlabelled prior: share of expert-like transitions assumed in the mixed set."""
    discriminator_clip: tuple[float, float] = bounded((0.1, 0.9), gt=0, lt=1)
    """Discriminator outputs are clipped to this range (keeps the weights finite)."""
    discriminator_every: int = bounded(100, ge=1)
    """Discriminator update period in steps (the authors' d_update_num)."""
    seed: int = bounded(0, ge=0)
    log_every: int = bounded(1000, ge=1)
    device: str = "auto"

    def __post_init__(self):
        low, high = self.discriminator_clip
        if not low < high:
            raise ConfigError(f"discriminator_clip: need low < high, got {list(self.discriminator_clip)}")


class Discriminator(StateActionClassifier):
    """d(s, a, normalised log pi(a|s)) in ``clip``: the probability of being expert data."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], clip: tuple[float, float]):
        super().__init__(obs_dim, act_dim, hidden, extra_dim=act_dim)
        self.clip = clip

    def probability(self, obs, actions, log_pi):
        return torch.sigmoid(self(obs, actions, log_pi)).clamp(*self.clip)


def normalized_log_pi(log_pi: torch.Tensor) -> torch.Tensor:
    return (log_pi.clamp(LOG_PI_MIN, LOG_PI_MAX) - LOG_PI_MIN) / (LOG_PI_MAX - LOG_PI_MIN)


class DWBCLearner:
    def __init__(self, config: DWBCConfig, data: CostLabelFreeData, device: torch.device):
        self.config = config
        task = data.task
        low, high = action_bounds(task)
        obs = all_observations(data.all_trajectories)
        self.actor = TanhGaussianActor(task, config.hidden, low, high)
        self.actor.deterministic.set_observation_stats(obs)
        self.discriminator = Discriminator(task.obs_dim, task.act_dim, config.hidden,
                                           config.discriminator_clip)
        self.discriminator.set_observation_stats(obs)
        self.actor.to(device)
        self.discriminator.to(device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr,
                                          weight_decay=config.actor_weight_decay)
        self.disc_opt = torch.optim.Adam(self.discriminator.parameters(), lr=config.discriminator_lr)
        self.steps = 0

    def update(self, expert: dict[str, torch.Tensor], mixed: dict[str, torch.Tensor]) -> dict[str, float]:
        c = self.config
        self.steps += 1
        s_e, a_e, s_o, a_o = (expert["observations"], expert["actions"],
                              mixed["observations"], mixed["actions"])
        log_pi_e = self.actor.log_prob(s_e, a_e)  # (B, act_dim)
        log_pi_o = self.actor.log_prob(s_o, a_o)

        d_e = self.discriminator.probability(s_e, a_e, normalized_log_pi(log_pi_e.detach()))
        d_o = self.discriminator.probability(s_o, a_o, normalized_log_pi(log_pi_o.detach()))
        d_loss = (-torch.log(d_e) - torch.log(1 - d_o) / c.eta + torch.log(1 - d_e)).mean()
        if self.steps % c.discriminator_every == 0 or self.steps == 1:
            self.disc_opt.zero_grad()
            d_loss.backward()
            self.disc_opt.step()

        w_e = d_e.detach()
        w_o = d_o.detach()
        w_o = torch.where(w_o < 0.5, torch.zeros_like(w_o), w_o)
        nll_e = -log_pi_e.sum(-1)
        nll_o = -log_pi_o.sum(-1)
        bc_loss = nll_e.mean()
        corr_e = (nll_e * (c.eta / (w_e * (1 - w_e)) + 1.0)).mean()
        corr_o = (nll_o * (1.0 / (1 - w_o) - 1.0)).mean()
        actor_loss = c.alpha * bc_loss - corr_e + corr_o
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        return {"losses/discriminator": d_loss.item(), "losses/actor": actor_loss.item(),
                "losses/bc_demos": bc_loss.item(), "values/d_expert": d_e.mean().item(),
                "values/d_mixed": d_o.mean().item()}


def train(config: DWBCConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> MLPPolicy:
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    expert = TransitionSampler(data.safe_demos, device)
    mixed = TransitionSampler(data.unlabelled, device)
    learner = DWBCLearner(config, data, device)
    train_steps("dwbc", config, data, workdir, log, vars(learner), generator,
                lambda: learner.update(expert.sample(config.batch_size, generator),
                                       mixed.sample(config.batch_size, generator)))
    return learner.actor.deterministic.cpu().eval()
