"""Run DSPO on one task: ``python experiments/dspo.py --task CarCircle --profile quick``.

Options: ``--config FILE`` (YAML; its ``profile`` key picks the defaults), ``--dataset PATH`` (a
DSRL file or folder), ``--out DIR`` (the run's folder; a rerun resumes at the first unfinished
stage), ``--set key=value`` (dotted overrides, YAML values: ``--set discriminator.vclub_coef=0.2``),
``--baselines`` (also BC-Safe and BC-All on the same data, for comparison). Training curves go to
TensorBoard under ``DIR/tb``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dspo_ray.cli import positive_int, run_cli, yaml_override  # noqa: E402
from dspo_ray.dspo.config import load_dspo_config  # noqa: E402
from dspo_ray.io import write_json_atomic  # noqa: E402


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
    p.add_argument("--task", default=None)
    p.add_argument("--profile", choices=["paper", "quick"], default=None)
    p.add_argument("--config", type=Path, default=None, help="YAML config file")
    p.add_argument("--dataset", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--set", action="append", default=[], type=yaml_override, metavar="KEY=VALUE")
    p.add_argument("--baselines", action="store_true", help="also run BC-Safe and BC-All")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="torch threads (default 1: the models are small, and extra threads spin on a shared machine)")
    args = p.parse_args(argv)

    overrides = dict(args.set)
    for key in ("task", "profile", "dataset", "seed"):
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
        result = run_dspo(config, out, runner=runner, report=progress)
        if args.baselines:
            from dspo_ray.dspo.baselines import run_bc_baselines
            result.update(run_bc_baselines(config, out / "baselines"))
            write_json_atomic(out / "result_with_baselines.json", result)
    finally:
        if close:
            close()
    print(json.dumps(result, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main, resume_hint="rerun the same command to resume at the first unfinished stage"))
