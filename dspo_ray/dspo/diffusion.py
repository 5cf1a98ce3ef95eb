"""Stage 2: a conditional trajectory diffusion model over windows of (state, action).

* Denoiser: the 1-D temporal U-Net of trajectory diffusion planners: residual blocks of
  Conv1d(kernel 5) + GroupNorm(8) + Mish, a sinusoidal diffusion-time embedding through an MLP,
  strided-conv down-sampling and transposed-conv up-sampling, channel multipliers ``dim_mults``,
  optional linear attention (hidden ``attention_dim``) at the bottleneck.
* Conditions (return r_tau, safety signal z_tau) go through a small MLP and are concatenated with
  the time embedding (return-conditioned planner). Classifier-free guidance: during training the
  pair is replaced, with probability ``condition_dropout``, by a learned null embedding (one joint
  mask); sampling uses eps = eps_null + w (eps_cond - eps_null).
* DDPM (appendix B) with ``n_diffusion_steps`` steps and a cosine schedule; the U-Net predicts the
  noise (``prediction="epsilon"``, DDPM), the clean window (``"x0"``, planners for locomotion) or
  the velocity v = sqrt(ab) eps - sqrt(1 - ab) x0 (``"v"``, Salimans & Ho 2022: x0 = sqrt(ab) x_t
  - sqrt(1 - ab) v, so the clean window is nearly the input at low noise and nearly -v at high
  noise), L1 loss (Table 4), EMA of the weights from iteration ``ema_start``, decay 0.995, every
  5 steps.
* States, actions and conditions are standardised per dimension (statistics kept in the model).
"""

from __future__ import annotations

import contextlib
import copy
import math
import sys
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dspo_ray.dspo.config import DiffusionConfig
from dspo_ray.dspo.windows import RaggedTrajectories
from dspo_ray.training import TrainContext, run_steps, unwrap

N_CONDITIONS = 2  # (return, safety signal)


# ----------------------------------------------------------------------------- the U-Net

class SinusoidalEmbedding(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / (half - 1))
        args = t.float()[:, None] * freqs[None]
        return torch.cat([args.sin(), args.cos()], dim=-1)


class Conv1dBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, groups: int = 8):
        super().__init__()
        self.block = nn.Sequential(nn.Conv1d(in_channels, out_channels, kernel_size,
                                             padding=kernel_size // 2),
                                   nn.GroupNorm(groups, out_channels), nn.Mish())

    def forward(self, x):
        return self.block(x)


class ResidualTemporalBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, embed_dim: int, kernel_size: int = 5):
        super().__init__()
        self.conv1 = Conv1dBlock(in_channels, out_channels, kernel_size)
        self.conv2 = Conv1dBlock(out_channels, out_channels, kernel_size)
        self.embed = nn.Sequential(nn.Mish(), nn.Linear(embed_dim, out_channels))
        self.residual = (nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x) + self.embed(embedding)[:, :, None]
        return self.conv2(h) + self.residual(x)


class LinearAttention(nn.Module):
    """Linear attention over the horizon (planners' bottleneck attention), pre-norm, residual."""

    def __init__(self, channels: int, hidden: int = 128, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(1, channels)
        self.to_qkv = nn.Conv1d(channels, 3 * hidden, 1, bias=False)
        self.to_out = nn.Conv1d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, length = x.shape
        q, k, v = self.to_qkv(self.norm(x)).view(b, 3, self.heads, -1, length).unbind(1)
        q = q.softmax(dim=-2) / math.sqrt(q.shape[-2])
        k = k.softmax(dim=-1)
        context = torch.einsum("bhdn,bhen->bhde", k, v)
        out = torch.einsum("bhde,bhdn->bhen", context, q).reshape(b, -1, length)
        return x + self.to_out(out)


class TemporalUnet(nn.Module):
    """eps(x_t, t, condition embedding) for x of shape (B, horizon, channels)."""

    def __init__(self, channels: int, dim: int = 64, dim_mults: tuple[int, ...] = (1, 2, 4, 8),
                 attention: bool = True, attention_dim: int = 128):
        super().__init__()
        dims = [channels, *(dim * m for m in dim_mults)]
        in_out = list(zip(dims[:-1], dims[1:]))
        embed_dim = 2 * dim  # time embedding ++ condition embedding
        self.time_mlp = nn.Sequential(SinusoidalEmbedding(dim), nn.Linear(dim, 4 * dim), nn.Mish(),
                                      nn.Linear(4 * dim, dim))
        self.downs = nn.ModuleList()
        for i, (d_in, d_out) in enumerate(in_out):
            last = i == len(in_out) - 1
            self.downs.append(nn.ModuleList([
                ResidualTemporalBlock(d_in, d_out, embed_dim),
                ResidualTemporalBlock(d_out, d_out, embed_dim),
                nn.Conv1d(d_out, d_out, 3, stride=2, padding=1) if not last else nn.Identity()]))
        mid = dims[-1]
        self.mid1 = ResidualTemporalBlock(mid, mid, embed_dim)
        self.mid_attention = (LinearAttention(mid, attention_dim, heads=4) if attention
                              else nn.Identity())
        self.mid2 = ResidualTemporalBlock(mid, mid, embed_dim)
        self.ups = nn.ModuleList()
        for d_in, d_out in reversed(in_out[1:]):
            self.ups.append(nn.ModuleList([
                ResidualTemporalBlock(2 * d_out, d_in, embed_dim),
                ResidualTemporalBlock(d_in, d_in, embed_dim),
                nn.ConvTranspose1d(d_in, d_in, 4, stride=2, padding=1)]))
        self.final = nn.Sequential(Conv1dBlock(dim, dim), nn.Conv1d(dim, channels, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2)
        embedding = torch.cat([self.time_mlp(t), condition], dim=-1)
        skips = []
        for block1, block2, down in self.downs:
            x = block2(block1(x, embedding), embedding)
            skips.append(x)
            x = down(x)
        x = self.mid2(self.mid_attention(self.mid1(x, embedding)), embedding)
        for block1, block2, up in self.ups:
            x = torch.cat([x, skips.pop()], dim=1)
            x = up(block2(block1(x, embedding), embedding))
        return self.final(x).transpose(1, 2)


# ----------------------------------------------------------------------------- DDPM + CFG

def cosine_beta_schedule(steps: int, s: float = 0.008) -> torch.Tensor:
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    alphas_cumprod = torch.cos(((x / steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    alphas_cumprod = alphas_cumprod / alphas_cumprod[0]
    return (1 - alphas_cumprod[1:] / alphas_cumprod[:-1]).clamp(0, 0.999).float()


class ConditionalTrajectoryDiffusion(nn.Module):
    """DDPM over normalised (state, action) windows, conditioned on (return, signal) with CFG.

    ``forward(x0, condition)`` is the training loss (so that a DDP wrapper sees the whole step);
    :meth:`sample` draws windows in data units.
    """

    def __init__(self, obs_dim: int, act_dim: int, horizon: int, n_diffusion_steps: int = 100,
                 dim: int = 64, dim_mults: tuple[int, ...] = (1, 2, 4, 8), attention: bool = True,
                 attention_dim: int = 128, condition_dropout: float = 0.25, loss: str = "l1",
                 clip_denoised: float = 5.0, prediction: str = "epsilon",
                 first_state_given: bool = False):
        super().__init__()
        self.config = dict(obs_dim=obs_dim, act_dim=act_dim, horizon=horizon,
                           n_diffusion_steps=n_diffusion_steps, dim=dim, dim_mults=tuple(dim_mults),
                           attention=attention, attention_dim=attention_dim,
                           condition_dropout=condition_dropout, loss=loss,
                           clip_denoised=clip_denoised, prediction=prediction,
                           first_state_given=first_state_given)
        if prediction not in ("epsilon", "x0", "v"):
            raise ValueError(f"prediction must be 'epsilon', 'x0' or 'v', got {prediction!r}")
        self.prediction = prediction
        # Diffuser's conditioning on the current state: the window's first state is clean in every
        # noised training window and left out of the loss, so the model learns to continue from
        # it; sampling then needs one (``sample``'s ``first_states``)
        self.first_state_given = first_state_given
        self.obs_dim, self.act_dim, self.horizon = obs_dim, act_dim, horizon
        self.channels = obs_dim + act_dim
        self.n_steps, self.condition_dropout, self.loss_type = n_diffusion_steps, condition_dropout, loss
        self.clip_denoised = clip_denoised
        self.unet = TemporalUnet(self.channels, dim, dim_mults, attention, attention_dim)
        self.condition_mlp = nn.Sequential(nn.Linear(N_CONDITIONS, dim), nn.Mish(),
                                           nn.Linear(dim, dim))
        self.null_condition = nn.Parameter(torch.randn(dim) * 0.02)
        betas = cosine_beta_schedule(n_diffusion_steps)
        alphas_cumprod = torch.cumprod(1 - betas, 0)
        prev = torch.cat([torch.ones(1), alphas_cumprod[:-1]])
        self.register_buffer("betas", betas)
        self.register_buffer("alphas_cumprod", alphas_cumprod)
        self.register_buffer("posterior_variance", betas * (1 - prev) / (1 - alphas_cumprod))
        self.register_buffer("posterior_mean_x0", betas * prev.sqrt() / (1 - alphas_cumprod))
        self.register_buffer("posterior_mean_xt", (1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod))
        # per-dimension standardisation of (state, action) and of the conditions
        self.register_buffer("x_mean", torch.zeros(self.channels))
        self.register_buffer("x_std", torch.ones(self.channels))
        self.register_buffer("condition_mean", torch.zeros(N_CONDITIONS))
        self.register_buffer("condition_std", torch.ones(N_CONDITIONS))

    def set_stats(self, x: np.ndarray, conditions: np.ndarray) -> None:
        x = torch.as_tensor(x, dtype=torch.float32)
        c = torch.as_tensor(conditions, dtype=torch.float32)
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-3))
        self.condition_mean.copy_(c.mean(0))
        self.condition_std.copy_(c.std(0).clamp_min(1e-3))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_mean) / self.x_std

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.x_std + self.x_mean

    def embed_condition(self, condition: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Condition embedding; rows where ``drop`` is True get the learned null embedding."""
        c = self.condition_mlp((condition - self.condition_mean) / self.condition_std)
        return torch.where(drop[:, None], self.null_condition.expand_as(c), c)

    def forward(self, x0: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """Training loss for a batch of data-unit windows (B, H, C) and conditions (B, 2)."""
        x0 = self.normalize(x0)
        b = len(x0)
        t = torch.randint(0, self.n_steps, (b,), device=x0.device)
        noise = torch.randn_like(x0)
        ab = self.alphas_cumprod[t][:, None, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        if self.first_state_given:
            x_t[:, 0, :self.obs_dim] = x0[:, 0, :self.obs_dim]
        drop = torch.rand(b, device=x0.device) < self.condition_dropout
        predicted = self.unet(x_t, t, self.embed_condition(condition, drop))
        if self.prediction == "epsilon":
            target = noise
        elif self.prediction == "v":
            target = ab.sqrt() * noise - (1 - ab).sqrt() * x0
        else:
            target = x0
        loss = F.l1_loss if self.loss_type == "l1" else F.mse_loss
        if self.first_state_given:  # the given first state is no prediction: left out
            keep = torch.ones_like(predicted[0], dtype=torch.bool)
            keep[0, :self.obs_dim] = False
            return loss(predicted[:, keep], target[:, keep])
        return loss(predicted, target)

    def sampling_timesteps(self, sampler: str, sampling_steps: int | None) -> list[int]:
        """The diffusion steps a sampler visits, noisiest first. DDPM: all of them; DDIM:
        ``sampling_steps`` of them evenly spaced over [0, n_steps - 1] (both ends included, so the
        first step starts from pure noise and the last one lands on the clean window)."""
        if sampler == "ddpm":
            if sampling_steps not in (None, self.n_steps):
                raise ValueError(f"DDPM visits all {self.n_steps} steps; sampling_steps="
                                 f"{sampling_steps} needs sampler='ddim'")
            return list(reversed(range(self.n_steps)))
        if sampler != "ddim":
            raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
        n = self.n_steps if sampling_steps is None else sampling_steps
        if not 1 <= n <= self.n_steps:
            raise ValueError(f"sampling_steps must be in [1, {self.n_steps}], got {n}")
        if n == 1:
            return [self.n_steps - 1]
        return np.unique(np.round(np.linspace(0, self.n_steps - 1, n)).astype(int))[::-1].tolist()

    def _guided_x0(self, x: torch.Tensor, step: int, embedding: torch.Tensor,
                   guidance_weight: float) -> torch.Tensor:
        """The clean window predicted at ``step`` with classifier-free guidance, clipped."""
        b = len(x)
        t = torch.full((2 * b,), step, device=x.device, dtype=torch.long)
        out_cond, out_null = self.unet(torch.cat([x, x]), t, embedding).chunk(2)
        out = (out_null + guidance_weight * (out_cond - out_null)).float()  # fp32 under autocast
        ab = self.alphas_cumprod[step]
        if self.prediction == "epsilon":
            x0 = (x - (1 - ab).sqrt() * out) / ab.sqrt()
        elif self.prediction == "v":
            x0 = ab.sqrt() * x - (1 - ab).sqrt() * out
        else:
            x0 = out
        if self.clip_denoised:
            x0 = x0.clamp(-self.clip_denoised, self.clip_denoised)
        return x0

    @torch.no_grad()
    def sample(self, condition: torch.Tensor, guidance_weight: float = 2.0,
               generator: torch.Generator | None = None, sampler: str = "ddpm",
               sampling_steps: int | None = None, eta: float = 0.0,
               first_states: torch.Tensor | None = None) -> torch.Tensor:
        """Windows (B, H, C) in data units for conditions (B, 2), with CFG.

        ``first_states`` (B, obs_dim, data units): each window starts at that state, inpainted
        as Diffuser conditions on the current state (Janner et al. 2022): written over the
        window's first state at the start and after every denoising step, so the rest of the
        window is denoised around it.

        ``sampler="ddpm"``: ancestral sampling over all ``n_steps`` (the paper). ``"ddim"``
        (Song et al. 2021): ``sampling_steps`` of the steps; from step t to the next visited step
        s, x_s = sqrt(ab_s) x0 + sqrt(1 - ab_s - sigma^2) eps + sigma noise with eps re-derived
        from the (clipped) x0 and sigma = eta sqrt((1 - ab_s)/(1 - ab_t) (1 - ab_t/ab_s)).
        eta = 0 is deterministic given the initial noise; eta = 1 over all steps is DDPM again
        (sigma^2 is then DDPM's posterior variance), which tests/test_dspo_diffusion.py checks.
        """
        steps = self.sampling_timesteps(sampler, sampling_steps)
        b, device = len(condition), condition.device
        shape = (b, self.horizon, self.channels)
        if self.first_state_given and first_states is None:
            raise ValueError("this model was trained to continue from a given first state "
                             "(first_state_given): pass first_states")
        x = torch.randn(shape, generator=generator).to(device)
        anchor = None
        if first_states is not None:
            obs = slice(0, self.obs_dim)
            anchor = (first_states.to(device) - self.x_mean[obs]) / self.x_std[obs]
            x[:, 0, obs] = anchor
        embedding = torch.cat([
            self.embed_condition(condition, torch.zeros(b, dtype=torch.bool, device=device)),
            self.embed_condition(condition, torch.ones(b, dtype=torch.bool, device=device))])
        for i, step in enumerate(steps):
            x0 = self._guided_x0(x, step, embedding, guidance_weight)
            if sampler == "ddpm":
                mean = self.posterior_mean_x0[step] * x0 + self.posterior_mean_xt[step] * x
                if step > 0:
                    noise = torch.randn(shape, generator=generator).to(device)
                    x = mean + self.posterior_variance[step].sqrt() * noise
                else:
                    x = mean
            elif i == len(steps) - 1:  # the last visited step lands on the clean window
                x = x0
            else:
                x = self._ddim_step(x, x0, step, steps[i + 1], eta, generator)
            if anchor is not None:
                x[:, 0, :self.obs_dim] = anchor
        return self.unnormalize(x)

    def _ddim_step(self, x: torch.Tensor, x0: torch.Tensor, step: int, next_step: int, eta: float,
                   generator: torch.Generator | None) -> torch.Tensor:
        """DDIM from ``step`` to ``next_step`` (see :meth:`sample`)."""
        # scalar coefficients in float64: 1 - ab_next - sigma^2 cancels badly in fp32 at the
        # noisy end of the cosine schedule (beta up to 0.999)
        ab, ab_next = (self.alphas_cumprod[step].double().item(),
                       self.alphas_cumprod[next_step].double().item())
        sigma = eta * math.sqrt((1 - ab_next) / (1 - ab) * (1 - ab / ab_next))
        eps_scale = math.sqrt(max(1 - ab_next - sigma ** 2, 0.0)) / math.sqrt(1 - ab)
        # x_next = sqrt(ab_next) x0 + eps_scale (x - sqrt(ab) x0) [+ sigma noise]
        x = (math.sqrt(ab_next) - eps_scale * math.sqrt(ab)) * x0 + eps_scale * x
        if eta > 0:
            x = x + sigma * torch.randn(x.shape, generator=generator).to(x.device)
        return x


def make_diffusion(config: DiffusionConfig, obs_dim: int, act_dim: int) -> ConditionalTrajectoryDiffusion:
    return ConditionalTrajectoryDiffusion(
        obs_dim, act_dim, config.horizon, config.n_diffusion_steps, config.dim, config.dim_mults,
        config.attention, config.attention_dim, config.condition_dropout, config.loss,
        prediction=config.prediction, first_state_given=config.first_state_given)


def fast_paths(model: ConditionalTrajectoryDiffusion, autocast: str, compile: bool,
               device: torch.device | str) -> contextlib.AbstractContextManager:
    """Switch on the GPU fast paths of :class:`DiffusionConfig` (``compile``: the U-Net in place)
    and return the context to run the model's passes in (bf16 autocast, or nothing). On any
    device but CUDA both are a no-op, said once on stderr: fp32 eager is the CPU's fast path."""
    device = torch.device(device)
    if device.type != "cuda":
        if autocast != "off" or compile:
            print(f"diffusion: autocast={autocast!r} compile={compile} apply on CUDA only; "
                  f"running fp32 eager on {device.type}", file=sys.stderr, flush=True)
        return contextlib.nullcontext()
    if compile:
        model.unet.compile()
    if autocast == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def load_diffusion(artefact: dict, ema: bool = True) -> ConditionalTrajectoryDiffusion:
    model = ConditionalTrajectoryDiffusion(**artefact["model_config"])
    model.load_state_dict(artefact["ema_state_dict" if ema else "state_dict"])
    return model.eval()


# ----------------------------------------------------------------------------- training

class WindowSampler:
    """Random full windows of ``horizon`` steps and their trajectory's (return, signal)."""

    def __init__(self, trajectories: RaggedTrajectories, signals: np.ndarray, horizon: int):
        self.x = np.concatenate([trajectories.observations, trajectories.actions], 1)
        usable = np.flatnonzero(trajectories.lengths >= horizon)
        if len(usable) == 0:
            raise ValueError(f"no trajectory has the {horizon} steps of a diffusion window; "
                             "lower diffusion.horizon")
        starts = trajectories.starts
        # every (trajectory, offset) with a full window, as the row of the window's first step
        self.first_rows = np.concatenate([starts[i] + np.arange(trajectories.lengths[i] - horizon + 1)
                                          for i in usable])
        self.owner = np.concatenate([np.full(trajectories.lengths[i] - horizon + 1, i) for i in usable])
        self.conditions = np.stack([trajectories.returns, signals], 1).astype(np.float32)
        self.horizon = horizon

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        pick = rng.integers(0, len(self.first_rows), batch_size)
        rows = self.first_rows[pick][:, None] + np.arange(self.horizon)
        return self.x[rows], self.conditions[self.owner[pick]]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.mul_(decay).add_(p.detach(), alpha=1 - decay)


def train_diffusion(ctx: TrainContext, trajectories: RaggedTrajectories, signals: np.ndarray,
                    config: DiffusionConfig, seed: int = 0) -> dict | None:
    """Stage trainer: the diffusion model on all trajectories' windows, each conditioned on its
    trajectory's return and safety signal. Returns on rank 0
    ``{model_config, state_dict, ema_state_dict, steps, config}``."""
    obs_dim, act_dim = trajectories.observations.shape[1], trajectories.actions.shape[1]
    sampler = WindowSampler(trajectories, np.asarray(signals, np.float32), config.horizon)
    torch.manual_seed(seed)
    model = make_diffusion(config, obs_dim, act_dim)
    model.set_stats(sampler.x, sampler.conditions)
    ema = copy.deepcopy(model).requires_grad_(False).to(ctx.device)
    precision = fast_paths(model, config.autocast, config.compile, ctx.device)
    model = ctx.wrap_model(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    worker_seed = seed * 1000 + ctx.rank
    rng = np.random.default_rng(worker_seed)
    torch.manual_seed(worker_seed)
    model.train()

    def step(done: int) -> dict[str, float]:
        x, condition = sampler.sample(config.batch_size, rng)
        with precision:
            loss = model(torch.as_tensor(x, device=ctx.device),
                         torch.as_tensor(condition, device=ctx.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if done % config.ema_every == 0:
            if done < config.ema_start:  # Table 4: EMA starts at iteration 1000; a copy before
                ema.load_state_dict(unwrap(model).state_dict())
            else:
                ema_update(ema, unwrap(model), config.ema_decay)
        return {"losses/diffusion": loss.item()}

    run_steps(ctx, "diffusion", config.steps, step,
              {"model": unwrap(model), "ema": ema, "optimizer": optimizer}, rng,
              config.log_every, config.checkpoint_every)
    if ctx.rank != 0:
        return None
    cpu = lambda m: {k: v.detach().cpu() for k, v in m.state_dict().items()}  # noqa: E731
    # guidance_weight is sampling's (generation's), not training's: a model trained once serves
    # every guidance weight (the stage cache shares it), so it does not record one
    trained_with = {k: v for k, v in asdict(config).items() if k != "guidance_weight"}
    return {"model_config": dict(unwrap(model).config), "state_dict": cpu(unwrap(model)),
            "ema_state_dict": cpu(ema), "steps": config.steps, "config": trained_with}
