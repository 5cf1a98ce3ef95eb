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
import functools
import json
import sys
from pathlib import Path

import numpy as np

from dspo_ray.data import (CostLabelFreeData, HiddenTruth, SplitConfig, load_task_data,
                           task_dataset_file)
from dspo_ray.data.dsrl import read_dsrl
from dspo_ray.dspo.generate import load_generated
from dspo_ray.io import write_bytes_atomic

# task -> (observation index, bound): a state costs 1 when |obs[index]| > bound
STATE_COST_RULES = {"CarCircle": (0, 0.6)}


def beyond(observations: np.ndarray, task: str) -> np.ndarray:
    index, bound = STATE_COST_RULES[task]
    return np.abs(observations[..., index]) > bound


def checked_task_data(run: Path) -> tuple[str, CostLabelFreeData, HiddenTruth, int, float]:
    """The run's task, its cost-label-free data and hidden truth, once the state cost rule is
    checked against every transition of the dataset (the cost of a step is its next state's), the
    number of transitions and the rule's agreement; exits with a one-line message for a task
    without a rule or a rule that disagrees. Runs that share a dataset and split read it once."""
    config = json.loads((run / "config.json").read_text())
    task = config["task"]
    if task not in STATE_COST_RULES:
        sys.exit(f"{Path(sys.argv[0]).stem}: {run}: task {task!r} has no state cost rule (this "
                 f"diagnostic knows {', '.join(STATE_COST_RULES)}); pass runs of those tasks")
    return _checked_task_data(task, config.get("dataset"), json.dumps(config["split"], sort_keys=True))


@functools.lru_cache(maxsize=None)
def _checked_task_data(task: str, dataset: str | None, split: str
                       ) -> tuple[str, CostLabelFreeData, HiddenTruth, int, float]:
    data, truth = load_task_data(task, dataset, SplitConfig(**json.loads(split)))
    columns = read_dsrl(task_dataset_file(task, dataset), task)
    agreement = float((beyond(columns["next_observations"], task) == (columns["costs"] > 0)).mean())
    if agreement < 0.999:
        sys.exit(f"{Path(sys.argv[0]).stem}: {task_dataset_file(task, dataset)}: the state cost rule "
                 f"agrees with the dataset's costs on only {agreement:.4f} of steps; fix "
                 f"STATE_COST_RULES[{task!r}]")
    return task, data, truth, len(columns["costs"]), agreement


def real_sets(data: CostLabelFreeData, truth: HiddenTruth) -> dict[str, list]:
    """The real trajectories the generated windows are compared with: the safe demonstrations and
    the unlabelled trajectories split by the hidden truth."""
    safe = truth.unlabelled_is_safe
    return {"safe demonstrations": data.safe_demos,
            "unlabelled, safe (truth)": [t for t, s in zip(data.unlabelled, safe) if s],
            "unlabelled, unsafe (truth)": [t for t, s in zip(data.unlabelled, safe) if not s]}


def real_shares(trajectories: list, task: str, horizon: int) -> tuple[int, float, float]:
    """States, the share of them that cost, and the share of ``horizon``-step stretches (the
    trajectories cut into the generated windows' length, for a like-for-like share) with a costly
    state."""
    obs = [t.observations for t in trajectories]
    states = beyond(np.concatenate(obs), task)
    stretches = np.concatenate([beyond(o[: len(o) // horizon * horizon], task)
                                .reshape(-1, horizon).any(1) for o in obs])
    return len(states), float(states.mean()), float(stretches.mean())


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
        task, data, truth, n_steps, agreement = checked_task_data(run)
        horizon = load_generated(run / "generated.npz")["observations"].shape[1]
        real = real_sets(data, truth)
        generated = {"generated (as run)": run / "generated.npz"}
        for folder in args.also:
            for rerun in sorted(folder.glob(f"{run.name}-*/generated.npz")):
                generated[f"generated ({rerun.parent.name[len(run.name) + 1:]})"] = rerun
        for name, trajectories in real.items():
            n, state_share, stretch_share = real_shares(trajectories, task, horizon)
            rows.append(f"| {run.name} | {name} | {n} | {state_share:.3f} | {stretch_share:.3f} | | |")
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
                    f"{n_steps} | {agreement:.4f} | | | |")
    if args.table:
        write_bytes_atomic(args.table, ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    main()
