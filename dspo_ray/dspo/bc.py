"""The final policy: a deterministic MLP trained by MSE behaviour cloning (paper L_BC).

DSPO clones the safe demonstrations together with the generated data; the same trainer gives the
paper's BC-Safe (demonstrations only) and BC-All (demonstrations + unlabelled) baselines.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dspo_ray.dspo.config import BCConfig
from dspo_ray.policies import MLPPolicy
from dspo_ray.training import TrainContext, run_steps, unwrap


def train_bc(ctx: TrainContext, observations: np.ndarray, actions: np.ndarray, config: BCConfig,
             action_low: np.ndarray, action_high: np.ndarray, seed: int = 0) -> dict | None:
    """Stage trainer: returns on rank 0 ``{policy_config, state_dict, steps}`` of an MLPPolicy."""
    observations = np.asarray(observations, np.float32)
    actions = np.asarray(actions, np.float32)
    if len(observations) != len(actions) or len(observations) == 0:
        raise ValueError(f"behaviour cloning needs matching, non-empty (obs, action) arrays, got "
                         f"{len(observations)} and {len(actions)} rows")
    torch.manual_seed(seed)
    policy = MLPPolicy(observations.shape[1], actions.shape[1], config.hidden, action_low, action_high)
    policy.set_observation_stats(observations)
    model = ctx.wrap_model(policy)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate,
                                 weight_decay=config.weight_decay)
    rng = np.random.default_rng(seed * 1000 + ctx.rank)
    obs_t = torch.as_tensor(observations, device=ctx.device)
    act_t = torch.as_tensor(actions, device=ctx.device)

    def step(done: int) -> dict[str, float]:
        idx = torch.as_tensor(rng.integers(0, len(obs_t), config.batch_size), device=ctx.device)
        loss = F.mse_loss(model(obs_t[idx]), act_t[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"losses/bc": loss.item()}

    run_steps(ctx, "bc", config.steps, step, {"model": unwrap(model), "optimizer": optimizer}, rng,
              config.log_every, config.checkpoint_every, torch_rng=False)
    if ctx.rank != 0:
        return None
    plain = unwrap(model)
    return {"policy_config": dict(plain.config), "steps": config.steps, "config": asdict(config),
            "state_dict": {k: v.detach().cpu() for k, v in plain.state_dict().items()}}


def policy_from_artefact(artefact: dict) -> nn.Module:
    policy = MLPPolicy(**artefact["policy_config"])
    policy.load_state_dict(artefact["state_dict"])
    return policy.eval()
