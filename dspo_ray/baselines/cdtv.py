"""CDT-V: the paper's variant of the Constrained Decision Transformer (Liu et al., 2023) for data
without cost labels.

1. Transition-level cost estimate, "the RGM way" (paper appendix C.2): the difference between the
   original and the RGM-corrected reward, kept non-negative,
       c_hat(s, a) = max(0, r - r') = correction_coef * std(r) * max(0, -clip(log D / (1 - D)))
   with D the demonstrations-vs-unlabelled classifier of rgm.py: transitions that look unlike the
   safe demonstrations cost, demonstration-like ones are free.
2. A CDT on every trajectory: tokens (return-to-go, cost-to-go, state, action) per step, a learned
   timestep embedding, a causal transformer, and a tanh-Gaussian action head with entropy
   regularisation and a learned temperature (CDT's stochastic policy). Defaults are CDT's: 3
   layers, 8 heads, embedding 128, context 10, dropout 0.1, lr 1e-4, weight decay 1e-4, 500 warm-up
   steps, gradient clipping 0.25, batch 2048, 100k steps, target entropy -act_dim, initial
   temperature 0.1. CDT's Pareto-frontier return relabelling is not used: with an estimated cost
   there is no reliable frontier to relabel towards.
3. Targets at evaluation (nothing here ever sees a real cost):
   - cost-to-go target = the task's cost limit expressed in estimated-cost units. The only
     trajectories known to satisfy the limit are the safe demonstrations, so the conversion factor
     is (a quantile, default the maximum, of the demonstrations' estimated cost returns) / cost
     limit, and the target is cost_limit x that factor, i.e. that quantile of the demonstrations'
     estimated cost returns (``target_cost_quantile``).
   - return-to-go target = the largest reward return among the demonstrations
     (``target_return_quantile``), as CDT conditions on returns the data shows are reachable.
   During an episode the policy lowers its return-to-go by the observed reward and its cost-to-go
   by its OWN estimate c_hat(s, a) of each step's cost (it carries the classifier).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dspo_ray.config import ConfigError, bounded
from dspo_ray.baselines.common import (Log, StateActionClassifier, action_bounds, emit,
                                       seed_everything, train_steps)
from dspo_ray.baselines.rgm import RewardCorrectionConfig, fit_reward_correction
from dspo_ray.data import CostLabelFreeData
from dspo_ray.training import resolve_device


@dataclass(frozen=True)
class CDTVConfig(RewardCorrectionConfig):
    steps: int = bounded(100_000, ge=1)
    """Transformer gradient steps (CDT: 100k; 200k for MetaDrive)."""
    batch_size: int = bounded(2048, ge=1)
    """Windows per minibatch (CDT default)."""
    lr: float = bounded(1e-4, gt=0)
    weight_decay: float = bounded(1e-4, ge=0)
    warmup_steps: int = bounded(500, ge=0)
    """Linear learning-rate warm-up."""
    grad_clip: float = bounded(0.25, gt=0)
    embedding_dim: int = bounded(128, ge=1)
    num_layers: int = bounded(3, ge=1)
    num_heads: int = bounded(8, ge=1)
    context_len: int = bounded(10, ge=1)
    """Steps per window (4 tokens each)."""
    dropout: float = bounded(0.1, ge=0, lt=1)
    init_temperature: float = bounded(0.1, gt=0)
    """Initial entropy temperature of the stochastic action head."""
    temperature_lr: float = bounded(1e-4, gt=0)
    target_return_quantile: float = bounded(1.0, ge=0, le=1)
    """Return-to-go target: this quantile of the demonstrations' reward returns."""
    target_cost_quantile: float = bounded(1.0, ge=0, le=1)
    """Cost-to-go target: this quantile of the demonstrations' ESTIMATED cost returns (see module doc)."""

    def __post_init__(self):
        if self.embedding_dim % self.num_heads:
            raise ConfigError(f"num_heads: {self.num_heads} does not divide embedding_dim "
                              f"{self.embedding_dim}")


# ----------------------------------------------------------------------------- model

class CDTModel(nn.Module):
    """Causal transformer over (rtg, ctg, s, a) tokens; predicts the action at each state token."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, obs_dim: int, act_dim: int, embedding_dim: int, num_layers: int,
                 num_heads: int, context_len: int, max_episode_steps: int, dropout: float):
        super().__init__()
        d = embedding_dim
        self.context_len = context_len
        self.embed_timestep = nn.Embedding(max_episode_steps + 1, d)
        self.embed_return = nn.Linear(1, d)
        self.embed_cost = nn.Linear(1, d)
        self.embed_state = nn.Linear(obs_dim, d)
        self.embed_action = nn.Linear(act_dim, d)
        self.embed_norm = nn.LayerNorm(d)
        self.embed_dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d, num_heads, 4 * d, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(d)
        self.action_mean = nn.Linear(d, act_dim)
        self.action_log_std = nn.Linear(d, act_dim)

    def forward(self, rtg, ctg, states, actions, timesteps, valid):
        """rtg, ctg (B, K); states (B, K, o); actions (B, K, a); timesteps (B, K) long; valid (B, K)
        bool (False = left padding). Returns the pre-tanh mean and std of the action at each step."""
        b, k = rtg.shape
        time = self.embed_timestep(timesteps)
        tokens = torch.stack([self.embed_return(rtg.unsqueeze(-1)) + time,
                              self.embed_cost(ctg.unsqueeze(-1)) + time,
                              self.embed_state(states) + time,
                              self.embed_action(actions) + time], dim=2).reshape(b, 4 * k, -1)
        x = self.embed_dropout(self.embed_norm(tokens))
        x = self.transformer(x, mask=self._attention_mask(valid))
        state_out = self.final_norm(x).reshape(b, k, 4, -1)[:, :, 2]
        log_std = self.action_log_std(state_out).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        return self.action_mean(state_out), log_std.exp()

    def _attention_mask(self, valid: torch.Tensor) -> torch.Tensor:
        """Causal, and no token attends a padding token; a padding token attends only itself
        (so no row is fully masked: fully masked rows give NaN)."""
        b, k = valid.shape
        n = 4 * k
        heads = self.transformer.layers[0].self_attn.num_heads
        token_valid = valid.repeat_interleave(4, dim=1)  # (B, n)
        causal = torch.ones(n, n, dtype=torch.bool, device=valid.device).tril()
        allowed = causal & token_valid[:, None, :]
        allowed = allowed | torch.eye(n, dtype=torch.bool, device=valid.device)
        mask = torch.zeros(b, n, n, device=valid.device).masked_fill(~allowed, float("-inf"))
        return mask.repeat_interleave(heads, dim=0)


def tanh_gaussian_log_prob(mean, std, actions):
    y = actions.clamp(-1 + 1e-5, 1 - 1e-5)
    u = torch.atanh(y)
    lp = -0.5 * ((u - mean) / std).pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)
    return (lp - torch.log1p(-y.pow(2) + 1e-6)).sum(-1)


# ----------------------------------------------------------------------------- the policy

class CDTPolicy(nn.Module):
    """The CDT plus its own cost estimator: keeps return-to-go and cost-to-go during an episode.

    ``reset(seed)`` restores the targets, ``act(obs)`` returns the deterministic (mean) action,
    ``observe(reward)`` lowers the return-to-go by the reward and the cost-to-go by the policy's
    own estimate of the step's cost. Actions lie in [-1, 1] (every registry task).
    """

    policy_kind = "cdt"  # what save_policy records, for dspo_ray.saved_policies.load_policy

    def __init__(self, obs_dim: int, act_dim: int, embedding_dim: int, num_layers: int,
                 num_heads: int, context_len: int, max_episode_steps: int, dropout: float,
                 discriminator_hidden: tuple[int, ...], correction_coef: float,
                 correction_clip: float, reward_unit: float, target_return: float,
                 target_cost: float, return_scale: float, cost_scale: float):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, embedding_dim=embedding_dim,
                           num_layers=num_layers, num_heads=num_heads, context_len=context_len,
                           max_episode_steps=max_episode_steps, dropout=dropout,
                           discriminator_hidden=tuple(discriminator_hidden),
                           correction_coef=correction_coef, correction_clip=correction_clip,
                           reward_unit=reward_unit, target_return=target_return,
                           target_cost=target_cost, return_scale=return_scale, cost_scale=cost_scale)
        self.model = CDTModel(obs_dim, act_dim, embedding_dim, num_layers, num_heads, context_len,
                              max_episode_steps, dropout)
        self.cost_estimator = StateActionClassifier(obs_dim, act_dim, tuple(discriminator_hidden))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_std", torch.ones(obs_dim))
        self.reset(0)

    # -- shared by training and acting
    def normalize(self, observations: torch.Tensor) -> torch.Tensor:
        return (observations - self.obs_mean) / self.obs_std

    @torch.no_grad()
    def estimated_cost(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        c = self.config
        logit = self.cost_estimator(observations, actions).clamp(-c["correction_clip"], c["correction_clip"])
        return c["correction_coef"] * c["reward_unit"] * (-logit).clamp_min(0)

    # -- episode interface used by dspo_ray.evaluation
    def reset(self, seed: int | None = None) -> None:
        self._states: list[np.ndarray] = []
        self._actions: list[np.ndarray] = []
        self._rtg = [float(self.config["target_return"])]
        self._ctg = [float(self.config["target_cost"])]

    @torch.no_grad()
    def act(self, observation: np.ndarray) -> np.ndarray:
        c = self.config
        k = c["context_len"]
        device = self.obs_mean.device
        self._states.append(np.asarray(observation, np.float32))
        t = len(self._states)
        start = max(0, t - k)
        states = torch.as_tensor(np.stack(self._states[start:]), device=device)
        actions = torch.zeros(t - start, c["act_dim"], device=device)
        if self._actions[start:]:
            actions[:len(self._actions[start:])] = torch.as_tensor(np.stack(self._actions[start:]), device=device)
        rtg = torch.as_tensor(self._rtg[start:t], dtype=torch.float32, device=device) / c["return_scale"]
        ctg = torch.as_tensor(self._ctg[start:t], dtype=torch.float32, device=device) / c["cost_scale"]
        timesteps = torch.arange(start, t, device=device).clamp(max=c["max_episode_steps"])
        mean, _ = self.model(rtg[None], ctg[None], self.normalize(states)[None], actions[None],
                             timesteps[None], torch.ones(1, t - start, dtype=torch.bool, device=device))
        action = torch.tanh(mean[0, -1]).cpu().numpy().astype(np.float32)
        self._actions.append(action)
        return action

    def observe(self, reward: float) -> None:
        obs = torch.as_tensor(self._states[-1], device=self.obs_mean.device)[None]
        act = torch.as_tensor(self._actions[-1], device=self.obs_mean.device)[None]
        self._rtg.append(self._rtg[-1] - float(reward))
        self._ctg.append(self._ctg[-1] - float(self.estimated_cost(obs, act)[0]))

    def __getstate__(self):
        # the per-episode history is not part of the policy
        state = self.__dict__.copy()
        for key in ("_states", "_actions", "_rtg", "_ctg"):
            state.pop(key, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.reset(0)


# ----------------------------------------------------------------------------- training data

class WindowSampler:
    """Windows of ``context_len`` steps ending at a uniformly drawn transition, left-padded at the
    start of a trajectory; return- and cost-to-go computed per trajectory."""

    def __init__(self, trajectories, estimated_costs: np.ndarray, context_len: int,
                 max_episode_steps: int, device: torch.device):
        lengths = np.array([len(t) for t in trajectories])
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        rtg, ctg, bounds = [], [], np.cumsum(np.r_[0, lengths])
        for i, t in enumerate(trajectories):
            rtg.append(np.cumsum(t.rewards[::-1], dtype=np.float64)[::-1])
            ctg.append(np.cumsum(estimated_costs[bounds[i]:bounds[i + 1]][::-1], dtype=np.float64)[::-1])
        t_ = lambda x, dt=torch.float32: torch.as_tensor(np.asarray(x), dtype=dt, device=device)  # noqa: E731
        self.states = t_(np.concatenate([t.observations for t in trajectories]))
        self.actions = t_(np.concatenate([t.actions for t in trajectories]))
        self.rtg = t_(np.concatenate(rtg))
        self.ctg = t_(np.concatenate(ctg))
        self.starts = t_(starts, torch.long)
        self.timesteps = t_(np.arange(len(starts)) - starts, torch.long).clamp(max=max_episode_steps)
        self.context_len = context_len
        self.size = len(starts)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        end = torch.randint(self.size, (batch_size,), generator=generator).to(self.starts.device)
        idx = end[:, None] - torch.arange(self.context_len - 1, -1, -1, device=end.device)[None]
        valid = idx >= self.starts[end][:, None]
        idx = torch.where(valid, idx, end[:, None])
        zero = lambda x: x * valid.view(*valid.shape, *([1] * (x.dim() - 2))).to(x.dtype)  # noqa: E731
        return {"rtg": zero(self.rtg[idx]), "ctg": zero(self.ctg[idx]), "states": zero(self.states[idx]),
                "actions": zero(self.actions[idx]), "timesteps": zero(self.timesteps[idx]), "valid": valid}


# ----------------------------------------------------------------------------- training

class CDTLearner:
    def __init__(self, config: CDTVConfig, policy: CDTPolicy, device: torch.device, act_dim: int):
        self.config = config
        self.policy = policy.to(device)
        self.model = policy.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min((s + 1) / max(config.warmup_steps, 1), 1.0))
        self.log_temperature = torch.tensor(math.log(config.init_temperature), device=device,
                                            requires_grad=True)
        self.temperature_opt = torch.optim.Adam([self.log_temperature], lr=config.temperature_lr,
                                                betas=(0.9, 0.999))
        self.target_entropy = -float(act_dim)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        p = self.policy.config
        self.model.train()
        mean, std = self.model(batch["rtg"] / p["return_scale"], batch["ctg"] / p["cost_scale"],
                               self.policy.normalize(batch["states"]), batch["actions"],
                               batch["timesteps"], batch["valid"])
        valid = batch["valid"].float()
        log_likelihood = (tanh_gaussian_log_prob(mean, std, batch["actions"]) * valid).sum() / valid.sum()
        u = mean + std * torch.randn_like(mean)
        entropy = -(tanh_gaussian_log_prob(mean, std, torch.tanh(u)) * valid).sum() / valid.sum()
        temperature = self.log_temperature.exp().detach()
        loss = -log_likelihood - temperature * entropy
        self.optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        temperature_loss = self.log_temperature.exp() * (entropy.detach() - self.target_entropy)
        self.temperature_opt.zero_grad()
        temperature_loss.backward()
        self.temperature_opt.step()
        return {"losses/action_nll": -log_likelihood.item(), "losses/cdt": loss.item(),
                "values/entropy": entropy.item(), "values/temperature": temperature.item()}


def _sub_config(cls, config):
    return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def train(config: CDTVConfig, data: CostLabelFreeData, workdir: Path, log: Log = None) -> CDTPolicy:
    task = data.task
    low, high = action_bounds(task)
    if not (np.all(low == -1) and np.all(high == 1)):
        raise ValueError(f"CDT-V assumes actions in [-1, 1]; task {task.name} has [{low}, {high}]")
    disc, rewards, corrected, unit = fit_reward_correction(
        _sub_config(RewardCorrectionConfig, config), data, log, workdir)
    estimated_costs = np.maximum(0.0, rewards - corrected).astype(np.float32)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)

    trajectories = data.all_trajectories
    bounds = np.cumsum([0] + [len(t) for t in trajectories])
    est_cost_returns = np.array([estimated_costs[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
    reward_returns = np.array([t.reward_return for t in trajectories])
    n_demos = len(data.safe_demos)  # all_trajectories lists the demonstrations first
    target_return = float(np.quantile(reward_returns[:n_demos], config.target_return_quantile))
    target_cost = float(np.quantile(est_cost_returns[:n_demos], config.target_cost_quantile))
    policy = CDTPolicy(
        task.obs_dim, task.act_dim, config.embedding_dim, config.num_layers, config.num_heads,
        config.context_len, task.max_episode_steps, config.dropout, config.discriminator_hidden,
        config.correction_coef, config.correction_clip, unit, target_return, target_cost,
        return_scale=float(max(np.abs(reward_returns).max(), 1e-6)),
        cost_scale=float(max(est_cost_returns.max(), 1e-6)))
    policy.cost_estimator.load_state_dict(disc.state_dict())
    policy.cost_estimator.requires_grad_(False)
    obs = np.concatenate([t.observations for t in trajectories])
    policy.obs_mean.copy_(torch.as_tensor(obs.mean(0)))
    policy.obs_std.copy_(torch.as_tensor(obs.std(0)).clamp_min(1e-3))
    emit(log, {"values/target_return": target_return, "values/target_cost": target_cost,
               "values/estimated_cost_mean": estimated_costs.mean(),
               "values/demo_estimated_cost_return_mean": est_cost_returns[:n_demos].mean(),
               "values/unlabelled_estimated_cost_return_mean": est_cost_returns[n_demos:].mean()}, 0)

    sampler = WindowSampler(trajectories, estimated_costs, config.context_len,
                            task.max_episode_steps, device)
    learner = CDTLearner(config, policy, device, task.act_dim)
    train_steps("cdt", config, data, workdir, log, vars(learner), generator,
                lambda: learner.update(sampler.sample(config.batch_size, generator)),
                inputs=estimated_costs)
    policy.reset(0)
    return policy.cpu().eval()
