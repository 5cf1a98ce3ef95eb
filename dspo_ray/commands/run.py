"""Run DSPO on one task (discriminator -> labels -> diffusion -> generation -> BC -> evaluation).

    dspo-run --task CarCircle --profile quick      (= python experiments/dspo.py ...)
    dspo-run --config my.yaml --set discriminator.vclub_coef=0.2 --out runs/x

Every stage's artefact is saved in the run's folder, so rerunning the same command resumes at the
first unfinished stage. With ``--stage-cache DIR`` a stage trained before (by any run given the
same DIR) with the same settings, dataset file and code is copied from DIR instead of trained:
a second run that changes only generation or BC settings trains only those stages. The settings
are DSPOConfig's (dspo_ray/dspo/config.py): a profile's
defaults, then the YAML file, then the flags below, validated before anything is written.
Training curves go to TensorBoard under ``<out>/tb``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from dspo_ray.cli import positive_int, run_cli, yaml_override
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.io import write_json_atomic


def tensorboard_logger(folder: Path):
    """A runner callback writing every reported number to TensorBoard (steps counted per name).

    The writer (and its folder) is made at the first number, so a run refused for bad input
    leaves nothing behind."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard missing: log nothing rather than fail the run
        return None, None
    writers: list = []
    counts: dict[str, int] = {}

    def log(metrics: dict) -> None:
        if not writers:
            writers.append(SummaryWriter(str(folder)))
        writer = writers[0]
        step = int(metrics.get("train/step", 0))
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and k != "train/step":
                counts[k] = counts.get(k, 0) + 1
                writer.add_scalar(k, v, step or counts[k])
        writer.flush()

    def close() -> None:
        for writer in writers:
            writer.close()
    return log, close


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default=None,
                   help="the task, e.g. CarCircle or DroneRun (default: the config's, CarCircle)")
    p.add_argument("--profile", choices=["paper", "quick"], default=None,
                   help="defaults to start from: paper (Table 4) or quick (minutes on 2 CPU cores); "
                        "default: the config file's 'profile', else paper")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML file of DSPOConfig settings (its 'profile' key picks the defaults)")
    p.add_argument("--dataset", default=None,
                   help="a DSRL file or a folder holding one (default: $DSRL_DATASET_DIR, then the "
                        "shipped datasets/)")
    p.add_argument("--seed", type=int, default=None,
                   help="training seed (default 0); the evaluation episodes are seeded from it "
                        "(dspo_ray.evaluation.evaluation_seed)")
    p.add_argument("--eval-episodes", type=positive_int, default=None,
                   help="final evaluation episodes (default: the config's, 20 as DSRL)")
    p.add_argument("--eval-workers", type=positive_int, default=None,
                   help="processes for evaluation episodes, this one included (default: all CPUs where that pays)")
    p.add_argument("--out", type=Path, default=None,
                   help="the run's folder; rerunning with the same folder resumes "
                        "(default: runs/dspo-<profile>-<task>-seed<seed>)")
    p.add_argument("--set", action="append", default=[], type=yaml_override, metavar="KEY=VALUE",
                   help="one setting, dotted and read as YAML (--set discriminator.vclub_coef=0.2, "
                        "--set bc.hidden=[256,256]); repeatable")
    p.add_argument("--stage-cache", type=Path, default=None, metavar="DIR",
                   help="a folder of stage artefacts shared by runs (dspo_ray/dspo/stage_cache.py): "
                        "a stage whose settings, dataset file and code match an artefact there is "
                        "copied instead of trained, and every stage trained is added; results are "
                        "the same as without it (default: off)")
    p.add_argument("--baselines", action="store_true",
                   help="also run BC-Safe and BC-All on the same data and BC settings, to compare")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: the models are small, and extra threads spin on a shared machine)")
    args = p.parse_args(argv)

    overrides = dict(args.set)
    for key in ("task", "profile", "dataset", "seed", "eval_episodes", "eval_workers"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    config = load_dspo_config(args.config, **overrides)  # validated: nothing written before this

    import torch

    from dspo_ray.dspo.pipeline import run_dspo
    from dspo_ray.training import LocalRunner

    torch.set_num_threads(args.threads)
    out = args.out or Path("runs") / f"dspo-{config.profile}-{config.task}-seed{config.seed}"
    log, close = tensorboard_logger(out / "tb")
    runner = LocalRunner(log=[log] if log else [])

    def progress(m: dict) -> None:
        shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()
                 if k.startswith(("discriminator/", "eval/normalized", "time/"))}
        print(f"[{time.strftime('%H:%M:%S')}] stage {m['stage']} done: {shown}", flush=True)
        if log:
            log({k: v for k, v in m.items() if k != "stage"})

    try:
        result = run_dspo(config, out, runner=runner, report=progress, stage_cache=args.stage_cache)
        if args.baselines:
            from dspo_ray.dspo.baselines import run_bc_baselines
            result.update(run_bc_baselines(config, out / "baselines"))
            write_json_atomic(out / "result_with_baselines.json", result)
    finally:
        if close:
            close()
    print(json.dumps(result, indent=2, default=float))
    return 0


def cli() -> int:
    """The ``dspo-run`` command."""
    return run_cli(main, resume_hint="rerun the same command to resume at the first unfinished stage")


if __name__ == "__main__":
    sys.exit(cli())
