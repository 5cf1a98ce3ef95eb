"""Stage 1 option grid on the shipped datasets: AUROC of the safety signal vs true safety.

For each task, seed and option (a set of DiscriminatorConfig overrides on top of the quick
profile), trains the discriminator exactly as the pipeline does (``train_discriminator`` in a
LocalContext on the learner's data of the cost-label-free split), scores every trajectory, and
measures on the unlabelled trajectories:

- AUROC of the signal vs true safety (cost return <= limit), with both window reductions
  (``mean``: the paper's formula; ``min_window``: the least safe tiling window),
- Spearman correlation of the signal with the reward return (how much the signal is the return),
- training CPU and wall seconds,

beside the AUROC of the rule "rank by negative reward return" (no learning). The hidden truth is
read here for the report only. Results go to a JSONL file (one line per run; a rerun skips runs
already there) and a Markdown report, one table per task (never pooled across tasks).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/bench_stage1_options.py --seeds 0 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dspo_ray.data import load_task_data  # noqa: E402
from dspo_ray.dspo.config import profile_config  # noqa: E402
from dspo_ray.dspo.discriminator import (load_discriminator, score_trajectories,  # noqa: E402
                                         train_discriminator)
from dspo_ray.dspo.windows import ragged_from_data  # noqa: E402
from dspo_ray.training import LocalContext  # noqa: E402

D = "discriminator."
# name -> (overrides of the quick profile, what it is)
OPTIONS: dict[str, tuple[dict, str]] = {
    "no-vclub": ({D + "return_agnostic": False}, "no return-agnostic term"),
    "batch-0.1": ({D + "vclub_samples": "batch"}, "vCLUB on the balanced batch, coef 0.1 (main before issue 12)"),
    "data-0.1": ({D + "vclub_samples": "data"}, "vCLUB on a separate uniform data batch, coef 0.1"),
    "data-1": ({D + "vclub_samples": "data", D + "vclub_coef": 1.0}, "same, coef 1.0"),
    "nnpu": ({D + "pu_loss": "nnpu"}, "nnPU (balanced), prior estimated (e1), data vCLUB 0.1"),
    "steps-1200": ({D + "steps": 1200, D + "warmup_steps": 120}, "3x training steps, data vCLUB 0.1"),
    "window-100": ({D + "window": 100}, "window 100 (quick: 50), data vCLUB 0.1"),
    "noise-0.2": ({D + "demo_noise": 0.2}, "demo noise 0.2 std, data vCLUB 0.1"),
    "lr-1e-4": ({D + "learning_rate": 1e-4}, "lr 1e-4 (quick: 3e-4), data vCLUB 0.1"),
    "unl-1": ({D + "vclub_samples": "unlabelled", D + "vclub_coef": 1.0}, "vCLUB on unlabelled only, coef 1.0"),
    "batch-1": ({D + "vclub_samples": "batch", D + "vclub_coef": 1.0}, "vCLUB on the balanced batch, coef 1.0"),
    "window-25": ({D + "window": 25}, "window 25, data vCLUB 0.1"),
    "mlp": ({D + "variant": "mlp"}, "MLP backbone, data vCLUB 0.1"),
    "matched": ({D + "negatives": "return_matched"}, "return-matched negatives (bandwidth 0.1 std), data vCLUB 0.1"),
    "matched-noRA": ({D + "negatives": "return_matched", D + "return_agnostic": False}, "return-matched negatives, no return-agnostic term"),
    "matched-bw0.3": ({D + "negatives": "return_matched", D + "return_match_bandwidth": 0.3}, "return-matched negatives (bandwidth 0.3 std), data vCLUB 0.1"),
    "matched-mlp-1200": ({D + "negatives": "return_matched", D + "variant": "mlp", D + "steps": 1200, D + "warmup_steps": 120}, "return-matched negatives, MLP backbone, 3x steps"),
    "matched-mlp-bw0.3": ({D + "negatives": "return_matched", D + "variant": "mlp", D + "return_match_bandwidth": 0.3}, "return-matched negatives (bandwidth 0.3 std), MLP backbone"),
    "matched-mlp": ({D + "negatives": "return_matched", D + "variant": "mlp"}, "return-matched negatives, MLP backbone, data vCLUB 0.1"),
}
SCORE_WINDOWS = (10, 25)
TASKS = ["DroneRun", "AntRun", "CarCircle", "DroneCircle", "SwimmerVel"]


def run_one(task: str, seed: int, option: str) -> dict:
    overrides, _ = OPTIONS[option]
    cfg = profile_config("quick", task=task, seed=seed, **overrides)
    data, truth = load_task_data(cfg.task, cfg.dataset, cfg.split)
    traj = ragged_from_data(data)
    ctx = LocalContext(checkpoint_path=None, device=torch.device("cpu"))
    start, cpu = time.perf_counter(), time.process_time()
    artefact = train_discriminator(ctx, trajectories=traj, config=cfg.discriminator,
                                   max_timestep=data.task.max_episode_steps, seed=seed)
    wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    model = load_discriminator(artefact)
    unl = ~traj.is_demo
    safe = truth.unlabelled_is_safe
    out = {"task": task, "seed": seed, "option": option, "train_wall_s": wall_s,
           "train_cpu_s": cpu_s, "n_unlabelled": int(unl.sum()), "n_safe_unlabelled": int(safe.sum()),
           "auroc_neg_return": float(roc_auc_score(safe, -traj.returns[unl]))}
    for reduction in ("mean", "min_window"):
        s = score_trajectories(model, traj, cfg.discriminator.window, reduction=reduction)
        out[f"auroc_{reduction}"] = float(roc_auc_score(safe, s[unl]))
        out[f"spearman_return_{reduction}"] = float(spearmanr(s[unl], traj.returns[unl])[0])
        out[f"mean_signal_unl_{reduction}"] = float(s[unl].mean())
    for score_window in SCORE_WINDOWS:  # the least safe stretch of a few lengths
        s = score_trajectories(model, traj, score_window, reduction="min_window")
        out[f"auroc_min_window_{score_window}"] = float(roc_auc_score(safe, s[unl]))
    if cfg.discriminator.pu_loss == "nnpu":
        out["pu_prior"] = ctx.history[-1].get("train/pu_prior")
        out["true_prior"] = float(safe.mean())
    return out


def write_report(rows: list[dict], path: Path, command: str, header: dict) -> None:
    lines = ["# Stage 1 options: AUROC of the safety signal vs true safety (unlabelled set)", "",
             f"- command: `{command}`",
             f"- date: {header['date']}",
             f"- machine: {header['machine']}",
             "- profile: quick (`profile_config('quick')`, 400 steps unless the option says), split "
             "seed 0 (Table 3 counts, 15 highest-return safe demonstrations); seed = training seed",
             "- AUROC of the signal vs true safety on the unlabelled trajectories (hidden truth read "
             "for this report only); `mean` = paper scoring (mean z_t over tiling windows), "
             "`min` = least safe window; rho(ret) = Spearman of the mean-scored signal with the "
             "reward return on the unlabelled set; CPU s = training CPU seconds (1 thread)",
             "- `neg. return rule`: AUROC of ranking by negative reward return (no learning)", ""]
    for task in dict.fromkeys(r["task"] for r in rows):
        trs = [r for r in rows if r["task"] == task]
        seeds = sorted({r["seed"] for r in trs})
        r0 = trs[0]
        lines += [f"## {task} ({r0['n_safe_unlabelled']} safe of {r0['n_unlabelled']} unlabelled; "
                  f"neg. return rule AUROC {r0['auroc_neg_return']:.3f})", "",
                  "| option | AUROC mean-scored (per seed) | mean | AUROC min-window (mean) | rho(ret) | CPU s | what |",
                  "|---|---|---|---|---|---|---|"]
        for opt in OPTIONS:
            ors = sorted((r for r in trs if r["option"] == opt), key=lambda r: r["seed"])
            if not ors:
                continue
            per = " / ".join(f"{r['auroc_mean']:.3f}" for r in ors)
            extra = ""
            if "pu_prior" in ors[0]:
                extra = f" (prior est. {ors[0]['pu_prior']:.3f}, true {ors[0]['true_prior']:.3f})"
            lines.append(
                f"| {opt} | {per} | {np.mean([r['auroc_mean'] for r in ors]):.3f} | "
                f"{np.mean([r['auroc_min_window'] for r in ors]):.3f} | "
                f"{np.mean([r['spearman_return_mean'] for r in ors]):+.2f} | "
                f"{np.mean([r['train_cpu_s'] for r in ors]):.0f} | {OPTIONS[opt][1]}{extra} |")
        lines.append(f"\nseeds: {seeds}\n")
    # hand-written conclusions ("## Findings" to the end) survive a rewrite of the tables
    kept = ""
    if path.exists() and "\n## Findings" in path.read_text():
        kept = path.read_text()[path.read_text().index("\n## Findings"):]
    path.write_text("\n".join(lines) + "\n" + kept)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--options", nargs="+", default=list(OPTIONS)[:10], choices=list(OPTIONS),
                   help="default: all but batch-1 and window-25")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/stage1_options.md"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--merge", nargs="*", default=[],
                   help="JSONL files of other runs of this script (e.g. a second process's --out) "
                        "to add to this one's results before reporting")
    p.add_argument("--report-only", action="store_true", help="run nothing, write the report")
    p.add_argument("--command", help="the command line(s) to record in the report "
                                     "(default: this one)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    raw = out.with_suffix(".jsonl")
    rows = [json.loads(line) for line in raw.read_text().splitlines()] if raw.exists() else []
    done = {(r["task"], r["seed"], r["option"]) for r in rows}
    for extra in args.merge:
        for line in Path(extra).read_text().splitlines():
            r = json.loads(line)
            if (r["task"], r["seed"], r["option"]) not in done:
                done.add((r["task"], r["seed"], r["option"]))
                rows.append(r)
                with raw.open("a") as f:
                    f.write(line + "\n")
    header = {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared), torch "
                         f"{torch.__version__}, {args.threads} thread(s), load average at start "
                         f"{os.getloadavg()[0]:.1f}"}
    command = args.command or "python benchmarks/bench_stage1_options.py " + " ".join(sys.argv[1:])
    if args.report_only:
        write_report(rows, out, command, header)
        return
    for seed in args.seeds:  # every task and option at one seed before the next seed
        for task in args.tasks:
            for opt in args.options:
                if (task, seed, opt) in done:
                    continue
                row = run_one(task, seed, opt)
                print(json.dumps(row), flush=True)
                rows.append(row)
                with raw.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                write_report(rows, out, command, header)
    write_report(rows, out, command, header)


if __name__ == "__main__":
    main()
