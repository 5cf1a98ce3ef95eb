"""How unsafe are DSPO's generated windows by the hidden cost? A reporting-only diagnostic.

`stage2_variants/dynamics_x16.md` found that on CarCircle seed 0 the windows a 16x diffusion
model generates follow the dynamics as closely as real windows, and the policy cloned from them is
still unsafe. This asks what those windows show. On CarCircle the cost is a function of the
observed state: the car's x position (observation 0, scaled) beyond the safe band
(`bullet_safety_gym`'s CircleTask: cost 1 when |x| > x_lim; in observation units |obs[0]| > 0.6,
checked here against every transition of the dataset before anything is scored). So every state
of a generated window can be scored against the cost the simulator would give it.

READS THE HIDDEN COST: for reporting only. Nothing here trains or chooses anything.

    python benchmarks/window_truth.py --table F.md RUN [RUN ...] [--also DIR ...]

RUN: finished DSPO run folders (config.json, generated.npz); ``--also``: stage2_variants.py
``--out`` folders whose reruns of these runs (``<run name>-<variant>/generated.npz``) are scored
too. One row per (run, set of states): the run's safe demonstrations, the unlabelled
trajectories split by the hidden truth, and each set of generated windows.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from dspo_ray.data import SplitConfig, load_task_data, task_dataset_file
from dspo_ray.data.dsrl import read_dsrl
from dspo_ray.dspo.generate import load_generated
from dspo_ray.io import write_bytes_atomic

# task -> (observation index, bound): a state costs 1 when |obs[index]| > bound
STATE_COST_RULES = {"CarCircle": (0, 0.6)}


def beyond(observations: np.ndarray, task: str) -> np.ndarray:
    index, bound = STATE_COST_RULES[task]
    return np.abs(observations[..., index]) > bound


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished DSPO run folders")
    p.add_argument("--also", nargs="*", type=Path, default=[],
                   help="stage2_variants.py --out folders: their reruns of these runs are scored too")
    p.add_argument("--table", type=Path, help="also write the markdown table here")
    args = p.parse_args()
    rows = ["| run | states | n | share of states that cost (hidden) | share of 16-step stretches "
            "with a costly state | safety condition asked for (median) | the policy's normalised cost "
            "(evaluated) |", "|---|---|---|---|---|---|---|"]
    for run in args.runs:
        config = json.loads((run / "config.json").read_text())
        task = config["task"]
        if task not in STATE_COST_RULES:
            sys.exit(f"window_truth: {run}: task {task!r} has no state cost rule (this diagnostic knows "
                     f"{', '.join(STATE_COST_RULES)}); pass runs of those tasks")
        data, truth = load_task_data(task, config.get("dataset"), SplitConfig(**config["split"]))
        # the rule must give the dataset's own costs (the cost of a step is its next state's)
        columns = read_dsrl(task_dataset_file(task, config.get("dataset")), task)
        costs = columns["costs"]
        agreement = float((beyond(columns["next_observations"], task) == (costs > 0)).mean())
        if agreement < 0.999:
            sys.exit(f"window_truth: {run}: the state cost rule agrees with the dataset's costs on only "
                     f"{agreement:.4f} of steps; fix STATE_COST_RULES[{task!r}]")
        horizon = load_generated(run / "generated.npz")["observations"].shape[1]
        safe = truth.unlabelled_is_safe
        real = {"safe demonstrations": data.safe_demos,
                "unlabelled, safe (truth)": [t for t, s in zip(data.unlabelled, safe) if s],
                "unlabelled, unsafe (truth)": [t for t, s in zip(data.unlabelled, safe) if not s]}
        generated = {"generated (as run)": run / "generated.npz"}
        for folder in args.also:
            for rerun in sorted(folder.glob(f"{run.name}-*/generated.npz")):
                generated[f"generated ({rerun.parent.name[len(run.name) + 1:]})"] = rerun
        for name, trajectories in real.items():
            obs = [t.observations for t in trajectories]
            states = beyond(np.concatenate(obs), task)
            # real trajectories cut into the generated windows' length, for a like-for-like share
            stretches = np.concatenate([beyond(o[: len(o) // horizon * horizon], task)
                                        .reshape(-1, horizon).any(1) for o in obs])
            rows.append(f"| {run.name} | {name} | {len(states)} | {states.mean():.3f} | "
                        f"{stretches.mean():.3f} | | |")
            print(rows[-1], flush=True)
        for name, path in generated.items():
            g = load_generated(path)
            states = beyond(g["observations"], task)
            result = path.parent / "result.json"
            cost = (json.loads(result.read_text()).get("eval/normalized_cost")
                    if result.exists() else None)
            rows.append(f"| {run.name} | {name} | {states.size} | {states.mean():.3f} | "
                        f"{states.any(1).mean():.3f} | {np.median(g['safety_condition']):.2f} | "
                        f"{'' if cost is None else f'{cost:.2f}'} |")
            print(rows[-1], flush=True)
        rows.append(f"| {run.name} | (the rule against the dataset's costs: agreement) | "
                    f"{len(costs)} | {agreement:.4f} | | | |")
    if args.table:
        write_bytes_atomic(args.table, ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    main()
