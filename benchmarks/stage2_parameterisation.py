"""Does the diffusion model read its input? Stage 2's denoiser under each parameterisation.

Issue 14's stage-2 diagnostic (docs/results/stage2_variants/dynamics.md) found the quick
profile's generated windows collapsed to one window on MetaDrive and PointGoal1. This trains the
diffusion model of a finished DSPO run again (its config, the learner's data and its own stage-1
signals; only ``diffusion.prediction`` / ``diffusion.loss`` changed) and asks the denoiser
directly, on 256 real windows of the learner's data noised to diffusion step t:

* ``input_var_t{t}``: the variance over windows of the predicted clean window, as a share of the
  real windows' variance (the mean over dimensions, normalised units). Near 0: the prediction is
  the same whatever the input, the denoiser ignores it. Near 1: it varies as the data do.
* ``l1_t{t}``: the mean absolute error of the predicted clean window (normalised units); at t=0
  the input is the clean window up to 3% noise, so a denoiser that reads it is near 0.
  ``l1_median`` is the error of the constant per-dimension median, the best input-blind answer
  under the L1 loss.
* ``spread``: 200 windows sampled (DDPM, guidance 2, the windows' own conditions), the median over
  dimensions (states and actions) of their standard deviation as a ratio to the real windows'
  (stage2_dynamics.py's spread is over the states only).

Label-free: the learner's trajectories and the run's own signals, no cost anywhere.

    python benchmarks/stage2_parameterisation.py RUN [RUN ...] --table F.md --settings x0_l1 v_l1

``--steps N`` trains N steps instead of the run's (a smoke test: ``--steps 50``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

from dspo_ray.config import deep_merge, unflatten
from dspo_ray.data import load_task_data, task_dataset_file
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.diffusion import WindowSampler, load_diffusion, train_diffusion
from dspo_ray.dspo.windows import ragged_from_data
from dspo_ray.io import write_bytes_atomic
from dspo_ray.training import LocalRunner

SETTINGS: dict[str, dict[str, str]] = {
    "x0_l1": {"diffusion.prediction": "x0", "diffusion.loss": "l1"},  # the quick profile
    "x0_l2": {"diffusion.prediction": "x0", "diffusion.loss": "l2"},
    "epsilon_l1": {"diffusion.prediction": "epsilon", "diffusion.loss": "l1"},  # the paper
    "v_l1": {"diffusion.prediction": "v", "diffusion.loss": "l1"},
}
PROBE_STEPS = (0, 20, 50)
COLUMNS = ("run", "setting", "train_s", *(f"input_var_t{t}" for t in PROBE_STEPS),
           *(f"l1_t{t}" for t in PROBE_STEPS), "l1_median", "spread")


@torch.no_grad()
def probe(artefact: dict, windows: np.ndarray, conditions: np.ndarray, seed: int) -> dict[str, float]:
    """The denoiser's clean-window prediction on noised real windows, and sampled windows' spread."""
    model = load_diffusion(artefact, ema=True).eval()
    x0 = model.normalize(torch.as_tensor(windows))
    condition = torch.as_tensor(conditions)
    embedding = model.embed_condition(condition, torch.zeros(len(condition), dtype=torch.bool))
    generator = torch.Generator().manual_seed(seed)
    data_var = x0.var(0).mean()
    out: dict[str, float] = {}
    for t in PROBE_STEPS:
        ab = model.alphas_cumprod[t]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * torch.randn(x0.shape, generator=generator)
        # guidance weight 1: the plain conditional prediction, clipped as sampling clips it
        predicted = model._guided_x0(x_t, t, torch.cat([embedding, embedding]), 1.0)
        out[f"input_var_t{t}"] = float(predicted.var(0).mean() / data_var)
        out[f"l1_t{t}"] = float((predicted - x0).abs().mean())
    median = x0.reshape(-1, x0.shape[-1]).median(0).values
    out["l1_median"] = float((x0 - median).abs().mean())
    sampled = model.normalize(model.sample(condition[:200], guidance_weight=2.0, generator=generator))
    ratio = sampled.reshape(-1, x0.shape[-1]).std(0) / x0.reshape(-1, x0.shape[-1]).std(0)
    out["spread"] = float(ratio.median())
    return out


def measure(run: Path, setting: str, steps: int | None = None) -> dict[str, float | str]:
    raw = json.loads((run / "config.json").read_text())
    overrides = dict(SETTINGS[setting])
    if steps is not None:  # a shorter (or longer) budget; the EMA starts after a fifth of it
        overrides.update({"diffusion.steps": steps, "diffusion.ema_start": steps // 5})
    config = load_dspo_config(deep_merge(raw, unflatten(overrides)))
    data, _ = load_task_data(config.task, task_dataset_file(config.task, config.dataset), config.split)
    trajectories = ragged_from_data(data)  # the learner's data: no cost in it
    with np.load(run / "labels.npz") as f:
        signals = f["safety_signal"].astype(np.float32)
    start = time.perf_counter()
    with TemporaryDirectory() as scratch:
        artefact = LocalRunner().run("diffusion", train_diffusion, Path(scratch),
                                     trajectories=trajectories, signals=signals,
                                     config=config.diffusion, seed=config.seed)
    seconds = time.perf_counter() - start
    sampler = WindowSampler(trajectories, signals, config.diffusion.horizon)
    windows, conditions = sampler.sample(256, np.random.default_rng(config.seed))
    return {"run": run.name, "setting": setting, "train_s": round(seconds),
            **probe(artefact, windows, conditions, config.seed)}


def row(result: dict) -> str:
    cells = [f"{result[c]:.3f}" if isinstance(result[c], float) else str(result[c]) for c in COLUMNS]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished DSPO run folders")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--steps", type=int, help="diffusion training steps (default: the run's)")
    p.add_argument("--table", type=Path, help="also write the markdown table here")
    args = p.parse_args()
    if args.steps is not None and args.steps < 5:
        raise SystemExit(f"error: --steps {args.steps}: train at least 5 steps (the EMA starts "
                         "after a fifth of them)")
    for run in args.runs:
        if not (run / "labels.npz").is_file():
            raise SystemExit(f"error: {run} has no labels.npz: pass a finished DSPO run folder")
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    print("\n".join(lines), flush=True)
    for run in args.runs:
        for setting in args.settings:
            lines.append(row(measure(run, setting, args.steps)))
            print(lines[-1], flush=True)
            if args.table:  # after every row: a stopped run keeps what it measured
                write_bytes_atomic(args.table, ("\n".join(lines) + "\n").encode())
    if args.table:
        print(f"wrote {args.table}")


if __name__ == "__main__":
    main()
