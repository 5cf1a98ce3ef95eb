"""Evaluate a policy in a task's real simulator and print the DSRL-scored result as JSON.

    dspo-evaluate --task CarCircle --policy random --eval-episodes 20
    dspo-evaluate --task CarCircle --policy runs/.../policy.pt
    dspo-evaluate --task DroneRun --policy <best policy the sweep printed>

(``python experiments/evaluate.py`` in a checkout.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from dspo_ray.cli import add_deprecated_alias, nonnegative_int, positive_int, run_cli
from dspo_ray.evaluation import evaluate
from dspo_ray.tasks import TASKS, get_task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--policy", default="random",
                        help="'random', the path of a policy saved by "
                             "dspo_ray.policies.save_policy (a run's policy.pt, or a sweep "
                             "trial's checkpoint_*/policy.pt, as the sweep's summary prints "
                             "it), or a folder holding policy.pt")
    parser.add_argument("--eval-episodes", type=positive_int, default=20,
                        help="number of episodes (DSRL: 20)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--eval-workers", type=positive_int, default=None,
                        help="processes for episodes, this one included (default: all CPUs where that pays; 1 = this process only)")
    add_deprecated_alias(parser, "--episodes", "--eval-episodes", type=positive_int)
    add_deprecated_alias(parser, "--workers", "--eval-workers", type=positive_int)
    args = parser.parse_args(argv)

    spec = get_task(args.task)
    if args.policy == "random":
        from dspo_ray.envs import make_env
        from dspo_ray.policies import RandomPolicy

        env = make_env(spec, seed=args.seed)
        policy = RandomPolicy(env.action_space.low, env.action_space.high)
        env.close()
    else:
        from dspo_ray.policies import check_policy_fits
        from dspo_ray.saved_policies import load_policy

        policy = load_policy(args.policy)
        check_policy_fits(policy, spec.obs_dim, spec.act_dim, spec.name)

    start = time.perf_counter()
    result = evaluate(policy, spec, episodes=args.eval_episodes, seed=args.seed,
                      workers=args.eval_workers)
    out = {"policy": args.policy, **result.to_dict(), "wall_s": round(time.perf_counter() - start, 2)}
    print(json.dumps(out, indent=2))
    return 0


def cli() -> int:
    """The ``dspo-evaluate`` command."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
