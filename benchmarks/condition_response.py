"""Does DSPO's safety condition steer what the diffusion model generates? A reporting-only
diagnostic of stage 2 on CarCircle, where the hidden cost is a function of the state.

`window_truth.py` found that the windows generated for "safe" on CarCircle have 8-20% of their
states beyond the safe band, about the unlabelled data's average (13%) and far from the safe
demonstrations' 1.1%. Either the condition is not heard (the windows are the unconditional model's
whatever the condition asks), or it is heard and what it steers is not the cost. This separates
the two: from a finished run's own diffusion model and labels, it generates windows at a grid of
safety conditions x classifier-free guidance weights (the same noise in every cell, so cells are
paired) and scores every state with the hidden cost (``window_truth.beyond``) and, for runs that
have one, with the run's own discriminator (the stage-1 signal, label-free).

Run it on a learned run and on the oracle diagnostic of the same seed (``stage1_oracle``: the
diffusion model conditioned on the hidden truth, 1 safe / 0 unsafe). If the oracle's condition
moves the hidden share and the learned one's does not, the learned labels are what the condition
fails to carry; if neither moves, the conditional model does not hear its condition at this budget.

Conditions, from the run's own labels: ``low``, the 5% quantile of the unlabelled trajectories'
signals (the most unsafe-looking); ``as run``, the generation rule's (the smallest signal given a
safe demonstration, ``generation.safety_condition_quantile`` 0); ``high``, the largest signal given
a safe demonstration. Guidance weights: 0 (the unconditional model: every condition alike), 1 (the
conditional model), the run's own (2 at the quick profile), 4. The return condition is the run's
(drawn over the demonstrations' returns).

READS THE HIDDEN COST: for reporting only. Nothing here trains or chooses anything.

    python benchmarks/condition_response.py --table F.md RUN [RUN ...] [--windows 500]

RUN: finished DSPO run folders (config.json, labels.npz, diffusion.pt).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.discriminator import load_discriminator, score_trajectories
from dspo_ray.dspo.generate import generate
from dspo_ray.dspo.pipeline import ARTEFACTS
from dspo_ray.dspo.windows import windows_as_trajectories
from dspo_ray.io import write_bytes_atomic
from dspo_ray.tasks import action_bounds
from window_truth import beyond, checked_task_data, real_sets, real_shares  # benchmarks/

GUIDANCE_WEIGHTS = (0.0, 1.0, None, 4.0)
"""None: the run's own ``diffusion.guidance_weight``. Weight 0 is the unconditional model, so its
cells are drawn once per condition on purpose: equal rows check that the condition is dropped."""
BOOTSTRAP = 2000


def conditions(labels: dict[str, np.ndarray]) -> dict[str, float]:
    """The safety conditions asked for, from the run's own signals (no cost label)."""
    signal, is_demo = labels["safety_signal"], labels["is_demo"]
    return {"low": float(np.quantile(signal[~is_demo], 0.05)),
            "as run": float(signal[is_demo].min()),
            "high": float(signal[is_demo].max())}


def paired_difference(a: np.ndarray, b: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` (per-window shares of costly states, the same noise behind each pair)
    and its 95% bootstrap interval over windows."""
    diff = a - b
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(len(diff), size=(BOOTSTRAP, len(diff)))].mean(1)
    return float(diff.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def respond(run: Path, n_windows: int) -> tuple[list[str], list[str]]:
    """The run's rows of the grid table and of the paired-difference table."""
    task, data, truth, _, _ = checked_task_data(run)
    config = load_dspo_config(json.loads((run / "config.json").read_text()))
    with np.load(run / ARTEFACTS["labels"]) as f:
        labels = {k: f[k] for k in f.files}
    artefact = torch.load(run / ARTEFACTS["diffusion"], map_location="cpu", weights_only=False)
    discriminator_file = run / ARTEFACTS["discriminator"]
    discriminator = (load_discriminator(torch.load(discriminator_file, map_location="cpu",
                                                   weights_only=False))
                     if discriminator_file.exists() else None)
    low, high = action_bounds(data.task)
    demo = labels["is_demo"]
    generation = dataclasses.replace(config.generation, n_windows=n_windows,
                                     batch_size=min(config.generation.batch_size, n_windows))
    kind = "oracle (hidden truth)" if config.stage1_oracle else "learned"
    rows, per_window = [], {}
    horizon = None
    for name, value in conditions(labels).items():
        for weight in GUIDANCE_WEIGHTS:
            weight = config.diffusion.guidance_weight if weight is None else weight
            start = time.perf_counter()
            g = generate(artefact, dataclasses.replace(generation, safety_condition=value), weight,
                         labels["returns"][demo], labels["safety_signal"][demo], low, high,
                         seed=config.seed)
            horizon = g["observations"].shape[1]
            costly = beyond(g["observations"], task)
            per_window[name, weight] = costly.mean(1)
            signal = "" if discriminator is None else "{:.2f}".format(np.median(score_trajectories(
                discriminator, windows_as_trajectories(g["observations"], g["actions"]),
                window=horizon)))
            rows.append(f"| {run.name} | {kind} | {name} ({value:.2f}) | {weight:g} | "
                        f"{costly.mean():.3f} | {costly.any(1).mean():.3f} | {signal} |")
            print(rows[-1], f"({time.perf_counter() - start:.0f} s)", flush=True)
    for name, trajectories in real_sets(data, truth).items():
        n, state_share, stretch_share = real_shares(trajectories, task, horizon)
        rows.append(f"| {run.name} | real | {name} ({n} states) | | {state_share:.3f} | "
                    f"{stretch_share:.3f} | |")
    own = config.diffusion.guidance_weight
    differences = []
    for weight in sorted({1.0, own, 4.0}):
        for a, b in (("high", "low"), ("as run", "low")):
            mean, lo, hi = paired_difference(per_window[a, weight], per_window[b, weight])
            differences.append(f"| {run.name} | {kind} | {weight:g} | {a} - {b} | {mean:+.3f} "
                               f"[{lo:+.3f}, {hi:+.3f}] |")
            print(differences[-1], flush=True)
    return rows, differences


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished DSPO run folders")
    p.add_argument("--windows", type=int, default=500,
                   help="windows per cell (default 500, the quick profile's generation.n_windows)")
    p.add_argument("--table", type=Path, help="also write the markdown tables here")
    args = p.parse_args()
    for run in args.runs:
        missing = [ARTEFACTS[s] for s in ("labels", "diffusion") if not (run / ARTEFACTS[s]).exists()]
        if missing or not (run / "config.json").exists():
            sys.exit(f"condition_response: {run}: not a finished DSPO run folder (missing "
                     f"{', '.join(missing) or 'config.json'}); pass folders written by dspo-run")
    grid = ["| run | signal | safety condition asked for | guidance weight | share of states that "
            "cost (hidden) | share of windows with a costly state | stage-1 signal on the windows "
            "(median) |", "|---|---|---|---|---|---|---|"]
    paired = ["| run | signal | guidance weight | conditions | difference in the share of states "
              "that cost, mean [95% bootstrap interval over windows] |", "|---|---|---|---|---|"]
    for run in args.runs:
        rows, differences = respond(run, args.windows)
        grid += rows
        paired += differences
    text = "\n".join(grid) + "\n\n" + "\n".join(paired) + "\n"
    if args.table:
        write_bytes_atomic(args.table, text.encode())
        print(f"wrote {args.table}")


if __name__ == "__main__":
    main()
