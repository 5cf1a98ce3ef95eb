"""Generation of D^G (appendix D): windows from the diffusion model at safe, high-return conditions.

Return condition: drawn uniformly from the range of the safe demonstrations' returns ("within a
reasonable distribution"), or a fixed point of that range. Safety condition: the smallest signal
the discriminator gave a safe demonstration ("recall as diverse trajectories as possible under the
condition of being safe"), another quantile of those signals, or a fixed signal. The generated set is written to a file together with
the conditions it was drawn at, so that behaviour cloning can be re-run and the data inspected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dspo_ray.dspo.config import GenerationConfig
from dspo_ray.dspo.diffusion import fast_paths, load_diffusion
from dspo_ray.io import atomic_path


def generation_conditions(config: GenerationConfig, demo_returns: np.ndarray,
                          demo_signals: np.ndarray, rng: np.random.Generator
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(return, safety signal) for each of ``config.n_windows`` windows."""
    lo, hi = float(np.min(demo_returns)), float(np.max(demo_returns))
    n = config.n_windows
    if config.return_condition is None:
        returns = rng.uniform(lo, hi, n)
    else:
        returns = np.full(n, lo + config.return_condition * (hi - lo))
    signal = (float(np.quantile(demo_signals, config.safety_condition_quantile))
              if config.safety_condition is None else config.safety_condition)
    return returns.astype(np.float32), np.full(n, signal, np.float32)


def generate(diffusion_artefact: dict, config: GenerationConfig, guidance_weight: float,
             demo_returns: np.ndarray, demo_signals: np.ndarray, action_low: np.ndarray,
             action_high: np.ndarray, seed: int = 0, device: torch.device | str = "cpu",
             autocast: str = "off", compile: bool = False,
             anchor_states: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Generated windows in data units, actions clipped to the bounds, with their conditions.
    ``config.sampler`` picks DDPM (the paper) or DDIM; ``autocast``/``compile`` are
    :class:`~dspo_ray.dspo.config.DiffusionConfig`'s GPU switches. ``anchor_states`` (N,
    obs_dim): each window starts at one of them, drawn uniformly (``config.anchor``)."""
    model = load_diffusion(diffusion_artefact).to(device)
    precision = fast_paths(model, autocast, compile, device)
    rng = np.random.default_rng(seed)
    returns, signals = generation_conditions(config, demo_returns, demo_signals, rng)
    first = (None if anchor_states is None else  # drawn after the conditions: they stay as unanchored
             torch.as_tensor(anchor_states[rng.integers(len(anchor_states), size=config.n_windows)],
                             dtype=torch.float32))
    generator = torch.Generator().manual_seed(seed)
    windows = []
    for lo in range(0, config.n_windows, config.batch_size):
        cond = torch.as_tensor(np.stack([returns, signals], 1)[lo:lo + config.batch_size], device=device)
        batch_first = None if first is None else first[lo:lo + config.batch_size]
        with precision:
            windows.append(model.sample(cond, guidance_weight, generator, config.sampler,
                                        config.sampling_steps, config.eta,
                                        first_states=batch_first).cpu().numpy())
    x = np.concatenate(windows)
    obs_dim = model.obs_dim
    actions = np.clip(x[..., obs_dim:], action_low, action_high)
    return {"observations": x[..., :obs_dim].astype(np.float32), "actions": actions.astype(np.float32),
            "return_condition": returns, "safety_condition": signals,
            "guidance_weight": np.float32(guidance_weight)}


def save_generated(path: str | Path, generated: dict[str, np.ndarray]) -> Path:
    """An .npz of the generated windows and their conditions, written atomically."""
    with atomic_path(path, suffix=".npz") as tmp:  # np.savez appends .npz to any other name
        np.savez_compressed(tmp, **generated)
    return Path(path)


def load_generated(path: str | Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
