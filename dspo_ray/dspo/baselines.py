"""BC-Safe and BC-All (paper section 4) on exactly DSPO's data and BC settings, for comparison."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from dspo_ray.data import load_task_data
from dspo_ray.dspo.bc import policy_from_artefact, train_bc
from dspo_ray.dspo.config import DSPOConfig
from dspo_ray.io import unreadable, write_json_atomic
from dspo_ray.evaluation import evaluate, evaluation_seed
from dspo_ray.policies import save_policy
from dspo_ray.tasks import action_bounds
from dspo_ray.training import LocalRunner, StageRunner


def run_bc_baselines(config: DSPOConfig, workdir: str | Path,
                     runner: StageRunner | None = None) -> dict:
    """``{bc_safe/eval/..., bc_all/eval/...}``: BC on the demonstrations, and on all trajectories."""
    runner = runner or LocalRunner()
    workdir = Path(workdir)
    data, _ = load_task_data(config.task, config.dataset, config.split)
    low, high = action_bounds(data.task)
    out = {}
    for name, trajs in (("bc_safe", data.safe_demos), ("bc_all", data.all_trajectories)):
        path = workdir / f"{name}.json"
        if path.exists() and unreadable(path, lambda p: json.loads(p.read_text())) is None:
            out.update(json.loads(path.read_text()))
            continue
        path.unlink(missing_ok=True)  # missing, or damaged: computed again
        start = time.perf_counter()
        obs = np.concatenate([t.observations for t in trajs])
        act = np.concatenate([t.actions for t in trajs])
        artefact = runner.run(name, train_bc, workdir, observations=obs, actions=act,
                              config=config.bc, action_low=low, action_high=high, seed=config.seed)
        policy = policy_from_artefact(artefact)
        save_policy(workdir / f"{name}_policy.pt", policy)
        (workdir / f"{name}.in-progress.pt").unlink(missing_ok=True)
        result = evaluate(policy, data.task, episodes=config.eval_episodes,
                          seed=evaluation_seed(config.seed), workers=config.eval_workers)
        metrics = {f"{name}/eval/{k}": v for k, v in result.to_dict().items() if k != "task"}
        metrics[f"{name}/time_s"] = time.perf_counter() - start
        write_json_atomic(path, metrics)
        out.update(metrics)
    return out
