"""Are DSPO's generated windows physically consistent? A label-free diagnostic for issue 14.

Stage 2's diagnostic (docs/results/stage2_variants) found that the generated windows, not the
labels, add cost: with the hidden truth as stage 1, behaviour cloning on the demonstrations alone
is safer than on demonstrations + generated windows, and the stage-1 signal rates the generated
windows as safe as the demonstrations' own. Two explanations remain: the generated windows show
unsafe behaviour that looks safe to the signal, or they are not physically possible (a state that
does not follow from the previous state and action), so the policy cloned from them drifts into
states no demonstration visits.

This measures the second. A one-step dynamics model s' - s = f(s, a) is fitted on the learner's
trajectories (demonstrations and unlabelled, no cost anywhere; 80% of the trajectories, the rest
held out), and every window is scored by its mean one-step error in units of each state
dimension's step-change spread. The held-out real windows give the model's own error; a
generated window far above it is one the simulator could not have produced. A second, cruder
check: the spread of the states (each dimension's standard deviation over all the windows'
steps, the median over dimensions of its ratio to the held-out real windows'): near 0, the
generated windows are copies of one window (a collapsed generator), however consistent.

    python benchmarks/stage2_dynamics.py --table F.md RUN [RUN ...] [--also DIR ...]

RUN: finished DSPO run folders (their config.json, generated.npz). ``--also``: folders of reruns
(benchmarks/stage2_variants.py ``--out``) whose ``<run name>-<variant>/generated.npz`` are scored
as well, with the same dynamics model. Prints one markdown row per (run, windows), then one per
(task, stage-2 setting: the diffusion model's prediction target, ``generation.anchor``,
``generation.consistency`` and a sampler other than DDPM) over
the runs' own generated windows, with their distance from the real windows, |log(error ratio)| +
|log(spread ratio)| (0: like the real ones), and the runs' normalised cost beside it;
``--label-free`` leaves the cost out (it is not read), for choosing between settings by the
windows alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dspo_ray.data import SplitConfig, load_task_data
from dspo_ray.dspo.dynamics import fit_dynamics, transitions, window_errors
from dspo_ray.dspo.generate import load_generated
from dspo_ray.dspo.windows import RaggedTrajectories, ragged_from_data, sample_windows
from dspo_ray.io import write_bytes_atomic


def spread(observations: np.ndarray) -> np.ndarray:
    """Each state dimension's standard deviation over every step of a set of windows."""
    return observations.reshape(-1, observations.shape[-1]).std(0) + 1e-6


def as_arrays(windows: RaggedTrajectories, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(windows)
    return (windows.observations.reshape(n, horizon, -1), windows.actions.reshape(n, horizon, -1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished DSPO run folders")
    p.add_argument("--also", nargs="*", type=Path, default=[],
                   help="stage2_variants.py --out folders: their reruns of these runs are scored too")
    p.add_argument("--steps", type=int, default=4000, help="dynamics-model training steps")
    p.add_argument("--table", type=Path, help="also write the markdown table here")
    p.add_argument("--label-free", action="store_true",
                   help="leave the runs' evaluated cost out of the per-task summary (not read)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = ["| run | windows | n | one-step error: median | 90th percentile | median / held-out "
            "real median | share above the held-out real windows' 90th percentile | spread / "
            "held-out real spread | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    per_task: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for run in args.runs:
        start = time.time()
        config = json.loads((run / "config.json").read_text())
        data, _ = load_task_data(config["task"], config.get("dataset"), SplitConfig(**config["split"]))
        traj = ragged_from_data(data)  # the learner's data: no cost in it
        rng = np.random.default_rng(0)
        held_out = rng.random(len(traj)) < 0.2
        model = fit_dynamics(*transitions(traj, ~held_out), steps=args.steps, seed=0)
        generated = load_generated(run / "generated.npz")
        horizon = generated["observations"].shape[1]
        sets = {"held-out real (demos + unlabelled)": as_arrays(sample_windows(
                    traj, held_out, horizon, rng), horizon),
                "held-out demonstrations": as_arrays(sample_windows(
                    traj, held_out & traj.is_demo, horizon, rng, count=200), horizon)
                if (held_out & traj.is_demo).any() else None,
                "generated (as run)": (generated["observations"], generated["actions"])}
        for folder in args.also:
            for rerun in sorted(folder.glob(f"{run.name}-*/generated.npz")):
                g = load_generated(rerun)
                if len(g["observations"]):
                    sets[f"generated ({rerun.parent.name[len(run.name) + 1:]})"] = (
                        g["observations"], g["actions"])
        real = window_errors(model, *sets["held-out real (demos + unlabelled)"])
        reference = np.quantile(real, 0.9)
        real_spread = spread(sets["held-out real (demos + unlabelled)"][0])
        for name, windows in sets.items():
            if windows is None:
                continue
            e = window_errors(model, *windows)
            ratio, above = float(np.median(e) / np.median(real)), float((e > reference).mean())
            spread_ratio = float(np.median(spread(windows[0]) / real_spread))
            rows.append(f"| {run.name} | {name} | {len(e)} | {np.median(e):.3f} | "
                        f"{np.quantile(e, 0.9):.3f} | {ratio:.2f} | {above:.2f} | "
                        f"{spread_ratio:.2f} | {time.time() - start:.0f} |")
            print(rows[-1], flush=True)
            if name == "generated (as run)":
                distance = abs(np.log(ratio)) + abs(np.log(spread_ratio))
                cost = (() if args.label_free else
                        (json.loads((run / "result.json").read_text())["eval/normalized_cost"],))
                setting = config["diffusion"].get("prediction", "epsilon")
                generation = config["generation"]
                anchor = generation.get("anchor", "none")
                if anchor != "none":
                    setting += f", anchored at {anchor}"
                consistency = generation.get("consistency", "none")
                if consistency != "none":
                    setting += f", {consistency.replace('_', ' ')}"
                if generation.get("sampler", "ddpm") != "ddpm":
                    steps = (generation.get("sampling_steps")
                             or config["diffusion"]["n_diffusion_steps"])
                    setting += f", {generation['sampler']}-{steps}"
                per_task.setdefault((config["task"], setting), []).append(
                    (ratio, above, spread_ratio, distance, *cost))
    # per task and stage-2 setting: the as-run generated windows, and the runs' own evaluation
    # (the simulator's cost, reported beside the label-free measures, never used to compute them)
    cost_header = "" if args.label_free else " the runs' normalised cost (mean) |"
    rows += ["", "| task | stage 2 | runs | generated / held-out real median error (mean over "
             "runs) | share above the real 90th percentile | spread / real spread | distance from "
             f"the real windows |{cost_header}", "|---|---|---|---|---|---|---|" +
             ("" if args.label_free else "---|")]
    for (task, setting), values in per_task.items():
        means = np.mean(values, 0)
        rows.append(f"| {task} | {setting} | {len(values)} | "
                    + " | ".join(f"{v:.2f}" for v in means) + " |")
    print("\n".join(rows[-len(per_task) - 3:]))
    if args.table:
        write_bytes_atomic(args.table, ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    main()
