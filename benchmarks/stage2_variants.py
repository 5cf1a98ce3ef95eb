"""Stage 2 in isolation: rerun DSPO's generation, behaviour cloning and evaluation from finished
runs' stage-1 and diffusion artefacts with other generation settings, and score the generated
windows with the run's own discriminator.

A diagnostic for issue 14 ("is the conditioning rule what makes DSPO unsafe?"). Everything before
generation is the finished run's (its discriminator, labels and diffusion model are copied, their
settings are unchanged), so the variants differ in generation/BC only; a variant that changes
a diffusion setting (``diffusion_x4``, ``diffusion_x8``, ``diffusion_x16``, ``epsilon``, ``v``) retrains the diffusion model on the run's labels. The variants were chosen
after seeing the runs' costs: nothing here is a label-free selection, and the simulator's costs are
read (the evaluation, as every DSPO run's).

    python benchmarks/stage2_variants.py --out runs/stage2 --variants median demos_only \
        results/sweeps/dspo_matched/work/dspo-DroneRun-0-seed0-dcb668f1 ...

With ``--summary``, nothing is rerun: per task and variant, the mean reward / cost over the runs
from the result.json files already written.

Prints (and with ``--table F`` writes) one markdown row per (run, variant): the safety condition,
the discriminator's signal on the generated windows (median, and the share at or above the
demonstrations' median window signal), the same signal on windows of the demonstrations and of the
unlabelled safe / unsafe trajectories (those two groups read the hidden truth: reported only), and
the evaluation's normalised reward / cost.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from dspo_ray.config import deep_merge, to_dict, unflatten
from dspo_ray.data import SplitConfig, load_task_data
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.discriminator import load_discriminator, score_trajectories
from dspo_ray.dspo.generate import load_generated
from dspo_ray.dspo.pipeline import ARTEFACTS, run_dspo, stage_settings
from dspo_ray.dspo.windows import ragged_from_data, sample_windows, windows_as_trajectories
from dspo_ray.io import write_bytes_atomic

VARIANTS: dict[str, dict[str, object]] = {
    "as_run": {},
    "median": {"generation.safety_condition_quantile": 0.5},
    "median_ret50": {"generation.safety_condition_quantile": 0.5, "generation.return_condition": 0.5},
    "median_w1": {"generation.safety_condition_quantile": 0.5, "diffusion.guidance_weight": 1.0},
    # the smallest demonstration return instead of returns drawn over the demonstrations' range:
    # below it the data hold safe unlabelled trajectories, within it (on Bullet) almost none
    "ret_min": {"generation.return_condition": 0.0},
    "w1": {"diffusion.guidance_weight": 1.0},
    # is the safety condition heard at all? the unsafe label as the condition
    "cond_unsafe": {"generation.safety_condition": 0.0},
    # the largest signal a safe demonstration got instead of the smallest (appendix D's rule), at
    # the run's guidance weight and at 4: on CarCircle the smallest asks for windows about as
    # costly as the unconditional model's, the largest for windows near the demonstrations'
    # (docs/results/stage2_variants/condition_response.md)
    "demo_max": {"generation.safety_condition_quantile": 1.0},
    "demo_max_w4": {"generation.safety_condition_quantile": 1.0, "diffusion.guidance_weight": 4.0},
    # the same windows rolled out through a dynamics model fitted on the learner's data (their
    # first state and generated actions; generation.consistency): possible by construction
    "demo_max_rollout": {"generation.safety_condition_quantile": 1.0,
                         "generation.consistency": "dynamics_rollout"},
    "demo_max_w4_rollout": {"generation.safety_condition_quantile": 1.0, "diffusion.guidance_weight": 4.0,
                            "generation.consistency": "dynamics_rollout"},
    # fewer generated windows (100 x 16 rows beside the demonstrations' ~4,500-15,000)
    "windows_100": {"generation.n_windows": 100, "generation.batch_size": 100},
    # a diffusion model trained 4x / 8x / 16x longer (retrained on the run's labels)
    "diffusion_x4": {"diffusion.steps": 10_000, "diffusion.ema_start": 2000},
    "diffusion_x8": {"diffusion.steps": 20_000, "diffusion.ema_start": 4000},
    # 20% of the paper's 200k steps: about 50 CPU-minutes of diffusion training on one core
    "diffusion_x16": {"diffusion.steps": 40_000, "diffusion.ema_start": 8000},
    # the paper's epsilon prediction instead of the quick profile's x0 (retrained, same budget):
    # on MetaDrive the x0 model's windows are copies of one (docs/results/stage2_variants/dynamics.md)
    "epsilon": {"diffusion.prediction": "epsilon"},
    # v-prediction (retrained, same budget): the x0 model with the L1 loss outputs the
    # per-dimension median whatever its input on MetaDrive (a constant), and epsilon's windows are
    # noise at this budget; v's clean window is the input at low noise and -v at high noise.
    # Measured on all 27 Table 1 runs (as a sweep: experiments/configs/table1_dspo_v.yaml): not
    # collapsed, but further off the dynamics and costlier (docs/results/stage2_variants/v_prediction.md)
    "v": {"diffusion.prediction": "v"},
    # behaviour cloning on the demonstrations alone (one generated window, 16 of ~11,000 rows)
    "demos_only": {"generation.n_windows": 1, "generation.batch_size": 1},
    # label-free filters of the generated windows by the run's own stage-1 signal
    # (generation.signal_filter_quantile): only windows the discriminator rates at least as safe
    # as the q-quantile of the demonstrations' windows, topped up to 500 by up to 4 rounds of draws
    "filter_q25": {"generation.signal_filter_quantile": 0.25},
    "filter_q50": {"generation.signal_filter_quantile": 0.5},
    # windows that start where the simulator has been: a diffusion model trained to continue from
    # a given first state (retrained, same budget), each window started at a real state from the
    # demonstrations or from the unlabelled trajectories (generation.anchor)
    "anchor_demos": {"diffusion.first_state_given": True, "generation.anchor": "demonstrations"},
    "anchor_unlabelled": {"diffusion.first_state_given": True, "generation.anchor": "unlabelled"},
}
REUSED = ("discriminator", "labels", "diffusion")


def reused_stages(variant: str) -> list[str]:
    """The base run's stages whose artefacts the variant keeps: those none of its settings reach."""
    touches = lambda key, setting: key == setting or key.startswith(setting + ".")  # noqa: E731
    return [stage for stage in REUSED
            if not any(touches(key, setting) for key in VARIANTS[variant]
                       for setting in stage_settings(stage))]


def rerun(base: Path, variant: str, out: Path) -> tuple[Path, dict]:
    """The base run's generation + BC + evaluation redone with ``variant``'s settings."""
    old = json.loads((base / "config.json").read_text())
    settings = deep_merge(old, unflatten(VARIANTS[variant]))
    settings["eval_workers"] = 1
    config = load_dspo_config(settings)
    workdir = out / f"{base.name}-{variant}"
    workdir.mkdir(parents=True, exist_ok=True)
    for stage in reused_stages(variant):
        for name in (ARTEFACTS[stage], ARTEFACTS[stage] + ".metrics.json"):
            if (base / name).exists() and not (workdir / name).exists():
                shutil.copy2(base / name, workdir / name)
    (workdir / "config.json").write_text(json.dumps(to_dict(config), indent=2))
    return workdir, run_dspo(config, workdir)


def window_signals(workdir: Path) -> dict[str, float]:
    """The run's discriminator on its generated windows and on real windows of the same length;
    NaN for a run without one (the oracle diagnostic, whose signal is the hidden truth)."""
    config = json.loads((workdir / "config.json").read_text())
    generated = load_generated(workdir / ARTEFACTS["generation"])
    if not (workdir / ARTEFACTS["discriminator"]).exists():
        return {"condition": float(generated["safety_condition"][0]),
                **dict.fromkeys(("generated", "generated_demo_like", "demos", "unlabelled_safe",
                                 "unlabelled_unsafe"), float("nan"))}
    model = load_discriminator(torch.load(workdir / ARTEFACTS["discriminator"], map_location="cpu",
                                          weights_only=False))
    horizon = generated["observations"].shape[1]
    score = lambda w: score_trajectories(model, w, window=horizon)  # noqa: E731
    data, truth = load_task_data(config["task"], config.get("dataset"), SplitConfig(**config["split"]))
    trajectories = ragged_from_data(data)
    rng = np.random.default_rng(0)
    demo = score(sample_windows(trajectories, trajectories.is_demo, horizon, rng))
    unlabelled = ~trajectories.is_demo
    gen = score(windows_as_trajectories(generated["observations"], generated["actions"]))
    if len(gen) == 0:  # a filter let no window through: BC saw the demonstrations alone
        gen = np.full(1, np.nan)
    return {"condition": float(generated["safety_condition"][0]),
            "generated": float(np.median(gen)),
            "generated_demo_like": float((gen >= np.median(demo)).mean()),
            "demos": float(np.median(demo)),
            # hidden truth, reported only
            "unlabelled_safe": float(np.median(score(sample_windows(
                trajectories, unlabelled & truth.is_safe, horizon, rng)))),
            "unlabelled_unsafe": float(np.median(score(sample_windows(
                trajectories, unlabelled & ~truth.is_safe, horizon, rng))))}


def summary(runs: list[Path], variants: list[str], out: Path) -> str:
    """Markdown: per task, the mean normalised reward / cost of each variant over the runs that
    have it (``as run``: the runs' own result.json), with how many runs that is."""
    shown = ["as_run", *[v for v in variants if v != "as_run"]]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    tasks: list[str] = []
    for base in runs:
        task = json.loads((base / "config.json").read_text())["task"]
        tasks += [task] if task not in tasks else []
        for variant in shown:
            path = base / "result.json" if variant == "as_run" else out / f"{base.name}-{variant}" / "result.json"
            if path.exists():
                r = json.loads(path.read_text())
                results.setdefault((task, variant), []).append(
                    (r["eval/normalized_reward"], r["eval/normalized_cost"]))
    lines = ["| task | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for task in tasks:
        cells = []
        for variant in shown:
            values = np.array(results.get((task, variant), []))
            cells.append("-" if not len(values) else
                         f"{values[:, 0].mean():.2f} / {values[:, 1].mean():.2f} ({len(values)})")
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="finished DSPO run folders")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--out", type=Path, required=True, help="folder for the rerun variants")
    p.add_argument("--table", type=Path, help="also write the markdown table here")
    p.add_argument("--summary", action="store_true",
                   help="rerun nothing: per task and variant, the mean reward / cost over the runs "
                        "from the result.json files already there (each run's own, as run, and "
                        "those of its reruns in --out)")
    args = p.parse_args()
    if args.summary:
        table = summary(args.runs, args.variants, args.out)
        print(table, end="")
        if args.table:
            write_bytes_atomic(args.table, table.encode())
        return
    torch.set_num_threads(1)
    rows = ["| run | variant | safety condition | generated: median signal | generated: share >= demo median "
            "| demos | unlabelled safe (truth) | unlabelled unsafe (truth) | reward | cost | seconds |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for base in args.runs:
        for variant in args.variants:
            start = time.time()
            workdir, result = rerun(base, variant, args.out)
            s = window_signals(workdir)
            rows.append(f"| {base.name} | {variant} | {s['condition']:.2f} | {s['generated']:.2f} | "
                        f"{s['generated_demo_like']:.2f} | {s['demos']:.2f} | {s['unlabelled_safe']:.2f} | "
                        f"{s['unlabelled_unsafe']:.2f} | {result['eval/normalized_reward']:.2f} | "
                        f"{result['eval/normalized_cost']:.2f} | {time.time() - start:.0f} |")
            print(rows[-1], flush=True)
    if args.table:
        write_bytes_atomic(args.table, ("\n".join(rows) + "\n").encode())


if __name__ == "__main__":
    main()
