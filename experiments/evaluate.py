"""Evaluate a policy in a task's real simulator and print the DSRL-scored result as JSON.

    python experiments/evaluate.py --task CarCircle --policy random --episodes 20
    python experiments/evaluate.py --task CarCircle --policy runs/.../policy.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's dspo_ray

from dspo_ray.cli import nonnegative_int, positive_int, run_cli  # noqa: E402
from dspo_ray.evaluation import evaluate  # noqa: E402
from dspo_ray.tasks import TASKS, get_task  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--policy", default="random",
                        help="'random', the path of a policy saved by dspo_ray.policies.save_policy, "
                             "or a run folder holding policy.pt")
    parser.add_argument("--episodes", type=positive_int, default=20, help="number of episodes (DSRL: 20)")
    parser.add_argument("--seed", type=nonnegative_int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--workers", type=positive_int, default=None,
                        help="worker processes for episodes (default: all CPUs; 1 = this process)")
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
    result = evaluate(policy, spec, episodes=args.episodes, seed=args.seed, workers=args.workers)
    out = {"policy": args.policy, **result.to_dict(), "wall_s": round(time.perf_counter() - start, 2)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
