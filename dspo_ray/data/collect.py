"""Collect a DSRL-style dataset ourselves: an online Lagrangian agent, every episode kept, grid-thinned.

How DSRL made its data (our recipe: datasets/DATASETS.md): a PID-Lagrangian on-policy agent whose
cost limit moves linearly from high to low over training, keeping EVERY episode it plays, then a
grid filter over the (cost return, reward return) plane so that all trade-offs are covered and the
late, converged policies do not dominate. This module does the same at a small scale:

* :func:`train_and_record` runs PPO with a PID Lagrange multiplier on ``n_envs`` environments (one
  process, batched forward passes) and returns every finished episode as a
  :class:`~dspo_ray.data.trajectory.CostedTrajectory`, with the executed (clipped) actions.
* :func:`grid_filter` thins them: cells of the (cost, reward) grid are filled evenly ("water
  filling": every cell keeps up to the same cap, the cap chosen so the total is the target).
* :func:`collect` ties both together for one run, drops episodes above DSRL's maximum cost for
  the task and writes ``<dsrl id>-<max cost>-<count>.hdf5`` (see :mod:`experiments/collect.py`).
* :func:`plan_runs`, :func:`run_collect_run` and :func:`collect_task` do it the DSRL way: several
  :class:`CollectRun` per task (different seeds and cost-limit schedules), each run's EVERY episode
  saved atomically to ``<out>/runs/<task>/run-<k>-seed<s>.hdf5`` + ``.json`` (so an interrupted
  collection resumes without redoing finished runs), then all runs merged, grid-filtered and
  written with a JSON summary and a scatter plot (PNG). How runs are executed is pluggable
  (``map_fn``); :mod:`dspo_ray.distributed.collect` runs them as Ray tasks.

Everything that shapes the data is a :class:`CollectConfig` field.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from dspo_ray.data.dsrl import dsrl_filename, load_trajectories, write_dsrl
from dspo_ray.data.rollout import EpisodeRecorder
from dspo_ray.data.trajectory import CostedTrajectory
from dspo_ray.io import atomic_path, write_json_atomic
from dspo_ray.policies import mlp
from dspo_ray.tasks import TaskSpec, get_task


def default_keep(spec: TaskSpec) -> int:
    """Trajectories a collection keeps unless told otherwise: 1.25 x Table 3's N_safe +
    N_unlabelled, so that the paper's split fits with room for the split's own choices."""
    return int(round(1.25 * (spec.n_safe + spec.n_unlabelled)))


@dataclass(frozen=True)
class CollectConfig:
    task: str
    episodes: int = 2000
    """Training episodes to play (all are recorded; the grid filter thins them afterwards)."""
    keep: int | None = None
    """Trajectories in the written file; None: 1.25 x the task's N_safe + N_unlabelled (Table 3)."""
    seed: int = 0
    n_envs: int = 8
    steps_per_env: int = 256
    """Rollout length per environment between two PPO updates."""
    cost_limit_start: float | None = None
    """Target episode cost at the start of training; None: the task's DSRL max cost."""
    cost_limit_end: float | None = None
    """Target at the end; None: half the task's cost limit (so the late policies are safe)."""
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 3e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip: float = 0.2
    update_epochs: int = 10
    minibatch: int = 256
    entropy_coef: float = 0.0
    init_log_std: float = -0.5
    pid: tuple[float, float, float] = (0.05, 0.01, 0.01)
    """PID-Lagrangian gains (Kp, Ki, Kd) on (mean recent episode cost - current limit)."""
    lagrange_max: float = 100.0
    cost_bins: int = 60
    reward_bins: int = 50
    max_cost: float | None = None
    """Episodes with a cost return above this are dropped; None: the task's DSRL max cost."""

    def resolved(self) -> "CollectConfig":
        """The config with every None replaced by the task's default (what the run used)."""
        spec = get_task(self.task)
        return replace(
            self,
            keep=self.keep if self.keep is not None else default_keep(spec),
            cost_limit_start=(self.cost_limit_start if self.cost_limit_start is not None
                              else spec.dsrl_max_cost),
            cost_limit_end=self.cost_limit_end if self.cost_limit_end is not None else spec.cost_limit / 2,
            max_cost=self.max_cost if self.max_cost is not None else spec.dsrl_max_cost,
        )


# ---------------------------------------------------------------- agent

class _RunningNorm:
    """Running mean/std of observations (Welford over batches)."""

    def __init__(self, dim: int):
        self.mean, self.var, self.count = np.zeros(dim), np.ones(dim), 1e-4

    def update(self, x: np.ndarray) -> None:
        m, v, n = x.mean(0), x.var(0), len(x)
        delta, total = m - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        self.var = (self.var * self.count + v * n + delta ** 2 * self.count * n / total) / total
        self.count = total

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -10, 10).astype(np.float32)


class _ActorCritic(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...], init_log_std: float):
        super().__init__()
        self.pi = mlp([obs_dim, *hidden, act_dim], nn.Tanh)
        self.log_std = nn.Parameter(torch.full((act_dim,), init_log_std))
        self.v_reward = mlp([obs_dim, *hidden, 1], nn.Tanh)
        self.v_cost = mlp([obs_dim, *hidden, 1], nn.Tanh)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        return torch.distributions.Normal(self.pi(obs), self.log_std.exp())

    def values(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.v_reward(obs)[..., 0], self.v_cost(obs)[..., 0]


class _PIDLagrange:
    """PID Lagrange multiplier (Stooke et al. 2020), clipped to [0, max]."""

    def __init__(self, kp: float, ki: float, kd: float, max_value: float):
        self.kp, self.ki, self.kd, self.max = kp, ki, kd, max_value
        self.integral, self.prev_cost, self.value = 0.0, 0.0, 0.0

    def update(self, episode_cost: float, limit: float) -> float:
        error = episode_cost - limit
        self.integral = max(0.0, self.integral + self.ki * error)
        derivative = max(0.0, episode_cost - self.prev_cost)
        self.prev_cost = episode_cost
        self.value = float(np.clip(self.kp * error + self.integral + self.kd * derivative, 0, self.max))
        return self.value


def _gae(rewards, values, next_values, dones, gamma, lam):
    """GAE over (T, E) arrays; next_values already hold 0 after terminal steps and V(s') after
    time-outs, and ``dones`` (terminated or truncated) cuts the recursion between episodes."""
    adv = np.zeros_like(rewards)
    last = np.zeros(rewards.shape[1], np.float32)
    for t in reversed(range(len(rewards))):
        delta = rewards[t] + gamma * next_values[t] - values[t]
        last = delta + gamma * lam * (1.0 - dones[t]) * last
        adv[t] = last
    return adv, adv + values


def episode_reset_seeds(seed: int, episodes: int | None = None) -> Iterator[int]:
    """The reset seeds of a run's episodes (all of them when ``episodes`` is None): episode k,
    counting from 0 over all its environments in the order they start, is reset with seed
    ``seed * 100003 + k``."""
    first = seed * 100_003
    return itertools.count(first) if episodes is None else iter(range(first, first + episodes))


def collection_reset_seeds(summary: dict) -> list[int]:
    """Every reset seed of the runs behind a collected file, from its JSON summary."""
    runs = summary.get("stats", {}).get("runs") or [
        {"seed": summary["config"]["seed"], "episodes": summary["config"]["episodes"]}]
    return [s for run in runs for s in episode_reset_seeds(run["seed"], run["episodes"])]


def train_and_record(config: CollectConfig, log=print) -> list[CostedTrajectory]:
    """Run PPO-Lagrangian with a cost limit annealed over episodes; return EVERY finished episode,
    each reset with its seed from :func:`episode_reset_seeds`."""
    from dspo_ray.envs import make_env

    cfg = config.resolved()
    spec = get_task(cfg.task)
    torch.manual_seed(cfg.seed)
    T, E = cfg.steps_per_env, cfg.n_envs
    reset_seeds = episode_reset_seeds(cfg.seed)
    envs = [make_env(spec, seed=next(reset_seeds)) for _ in range(E)]
    low, high = envs[0].action_space.low, envs[0].action_space.high
    obs = np.stack([env.reset()[0] for env in envs])
    buffers = [EpisodeRecorder() for _ in envs]
    norm = _RunningNorm(spec.obs_dim)
    norm.update(obs)
    # value targets are regressed in units of a running scale (returns differ by 1000x across tasks)
    scale_r, scale_c = _RunningNorm(1), _RunningNorm(1)
    agent = _ActorCritic(spec.obs_dim, spec.act_dim, cfg.hidden, cfg.init_log_std)
    optim = torch.optim.Adam(agent.parameters(), lr=cfg.lr)
    lagrange = _PIDLagrange(*cfg.pid, cfg.lagrange_max)
    episodes: list[CostedTrajectory] = []
    started = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks, one sample batch: extra threads only contend
    try:
        while len(episodes) < cfg.episodes:
            progress = min(1.0, len(episodes) / cfg.episodes)
            limit = cfg.cost_limit_start + progress * (cfg.cost_limit_end - cfg.cost_limit_start)
            sr, sc = float(np.sqrt(scale_r.var[0])) + 1e-3, float(np.sqrt(scale_c.var[0])) + 1e-3
            raw_obs = np.zeros((T, E, spec.obs_dim), np.float32)
            b_obs = np.zeros((T, E, spec.obs_dim), np.float32)
            b_act = np.zeros((T, E, spec.act_dim), np.float32)
            b_logp, b_rew, b_cost, b_done = (np.zeros((T, E), np.float32) for _ in range(4))
            b_vr, b_vc, b_nvr, b_nvc = (np.zeros((T, E), np.float32) for _ in range(4))
            recent: list[CostedTrajectory] = []
            for t in range(T):
                raw_obs[t], b_obs[t] = obs, norm(obs)
                with torch.no_grad():
                    ot = torch.as_tensor(b_obs[t])
                    d = agent.dist(ot)
                    sample = d.sample()
                    b_logp[t] = d.log_prob(sample).sum(-1).numpy()
                    vr, vc = agent.values(ot)
                b_act[t], b_vr[t], b_vc[t] = sample.numpy(), vr.numpy() * sr, vc.numpy() * sc
                action = np.clip(b_act[t], low, high)  # what the simulator runs, and what we record
                next_obs, final_obs = np.empty_like(obs), np.empty_like(obs)
                terminal = np.zeros(E, bool)
                for i, env in enumerate(envs):
                    nxt, r, term, trunc, info = env.step(action[i])
                    traj = buffers[i].add(obs[i], action[i], r, nxt, term, trunc, info["cost"])
                    b_rew[t, i], b_cost[t, i] = r, info["cost"]
                    b_done[t, i], terminal[i], final_obs[i] = float(term or trunc), term, nxt
                    if traj is not None:
                        recent.append(traj)
                        nxt, _ = env.reset(seed=next(reset_seeds))
                    next_obs[i] = nxt
                with torch.no_grad():
                    nvr, nvc = agent.values(torch.as_tensor(norm(final_obs)))
                b_nvr[t] = np.where(terminal, 0.0, nvr.numpy() * sr)
                b_nvc[t] = np.where(terminal, 0.0, nvc.numpy() * sc)
                obs = next_obs
            norm.update(raw_obs.reshape(-1, spec.obs_dim))
            episodes.extend(recent)
            lam = (lagrange.update(float(np.mean([tr.cost_return for tr in recent])), limit)
                   if recent else lagrange.value)
            adv_r, ret_r = _gae(b_rew, b_vr, b_nvr, b_done, cfg.gamma, cfg.gae_lambda)
            adv_c, ret_c = _gae(b_cost, b_vc, b_nvc, b_done, cfg.gamma, cfg.gae_lambda)
            scale_r.update(ret_r.reshape(-1, 1))
            scale_c.update(ret_c.reshape(-1, 1))
            # reward advantage normalised; the cost advantage in the same units, weighted by lambda
            std_r = adv_r.std() + 1e-8
            adv = ((adv_r - adv_r.mean()) - lam * (adv_c - adv_c.mean())) / std_r / (1.0 + lam)
            flat = lambda x: torch.as_tensor(x.reshape(T * E, *x.shape[2:]))  # noqa: E731
            _ppo_update(agent, optim, cfg, flat(b_obs), flat(b_act), flat(b_logp), flat(adv),
                        flat(ret_r / sr), flat(ret_c / sc))
            if recent:
                log(f"[collect {spec.name}] episodes {len(episodes)}/{cfg.episodes} limit {limit:.1f} "
                    f"lambda {lam:.2f} reward {np.mean([tr.reward_return for tr in recent]):.1f} "
                    f"cost {np.mean([tr.cost_return for tr in recent]):.1f} "
                    f"({time.time() - started:.0f} s)")
    finally:
        torch.set_num_threads(threads)
        for env in envs:
            env.close()
    return episodes[: cfg.episodes]


def _ppo_update(agent, optim, cfg, obs, act, logp_old, adv, ret_r, ret_c) -> None:
    n = len(obs)
    for _ in range(cfg.update_epochs):
        for idx in torch.randperm(n).split(cfg.minibatch):
            d = agent.dist(obs[idx])
            logp = d.log_prob(act[idx]).sum(-1)
            ratio = (logp - logp_old[idx]).exp()
            a = adv[idx]
            pi_loss = -torch.min(ratio * a, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * a).mean()
            vr, vc = agent.values(obs[idx])
            v_loss = ((vr - ret_r[idx]) ** 2).mean() + ((vc - ret_c[idx]) ** 2).mean()
            loss = pi_loss + 0.5 * v_loss - cfg.entropy_coef * d.entropy().sum(-1).mean()
            optim.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(agent.parameters(), 0.5)
            optim.step()


# ---------------------------------------------------------------- thinning and writing

def grid_filter(cost_returns: np.ndarray, reward_returns: np.ndarray, keep: int,
                cost_bins: int = 60, reward_bins: int = 50, seed: int = 0) -> np.ndarray:
    """Indices of at most ``keep`` episodes spread over the (cost, reward) plane, sorted.

    The plane (each axis spanning its data's range) is cut into ``cost_bins x reward_bins`` cells;
    every cell keeps a random subset of at most ``cap`` of its episodes, with the largest ``cap``
    that keeps no more than ``keep`` in all, and the cells that overflow that cap share what is left
    (so exactly ``min(keep, len)`` are kept). Sparse trade-offs are all kept; crowded ones are thinned.
    """
    cost_returns, reward_returns = np.asarray(cost_returns, float), np.asarray(reward_returns, float)
    n = len(cost_returns)
    if keep >= n:
        return np.arange(n)

    def bin_of(x, bins):
        lo, hi = x.min(), x.max()
        return np.minimum(((x - lo) / max(hi - lo, 1e-12) * bins).astype(int), bins - 1)

    cell = bin_of(cost_returns, cost_bins) * reward_bins + bin_of(reward_returns, reward_bins)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    members = {}
    for i in order:  # each cell's episodes in a random order
        members.setdefault(cell[i], []).append(i)
    sizes = np.array([len(m) for m in members.values()])
    # largest cap with sum(min(size, cap)) <= keep (the sum grows with the cap)
    lo, hi = 0, int(sizes.max())
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if np.minimum(sizes, mid).sum() <= keep:
            lo = mid
        else:
            hi = mid - 1
    cap = lo
    chosen = [i for m in members.values() for i in m[:cap]]
    overflow = [m[cap] for m in members.values() if len(m) > cap]  # one more from each full cell
    extra = keep - len(chosen)
    chosen += list(rng.choice(overflow, size=extra, replace=False)) if extra > 0 else []
    return np.sort(np.asarray(chosen, dtype=np.int64))


def thin_episodes(cost_returns: np.ndarray, reward_returns: np.ndarray, keep: int,
                  cost_limit: float, min_safe_share: float = 0.0, cost_bins: int = 60,
                  reward_bins: int = 50, seed: int = 0) -> np.ndarray:
    """:func:`grid_filter`, with at least ``min_safe_share`` of the kept episodes safe (cost
    return <= ``cost_limit``) when the recorded ones allow it.

    The grid spans the cost axis evenly, so with a cost limit far below the maximum cost (10 of
    100-150 for Bullet) it keeps few safe episodes (5-13% here), while the paper's setting needs
    many safe trajectories among the unlabelled ones. When the plain filter keeps too few, the
    safe and the unsafe episodes are grid-filtered apart: safe ones up to the share, unsafe ones
    for the rest, each spread over its own part of the plane.
    """
    if not 0.0 <= min_safe_share <= 1.0:
        raise ValueError(f"min_safe_share must be in [0, 1], got {min_safe_share}")
    cost_returns, reward_returns = np.asarray(cost_returns, float), np.asarray(reward_returns, float)
    plain = grid_filter(cost_returns, reward_returns, keep, cost_bins, reward_bins, seed)
    safe = cost_returns <= cost_limit
    wanted = int(np.ceil(min_safe_share * len(plain)))
    if safe[plain].sum() >= wanted:
        return plain
    safe_idx, unsafe_idx = np.flatnonzero(safe), np.flatnonzero(~safe)
    n_safe = min(wanted, len(safe_idx))
    n_unsafe = min(len(plain) - n_safe, len(unsafe_idx))
    chosen = [safe_idx[grid_filter(cost_returns[safe_idx], reward_returns[safe_idx], n_safe,
                                   cost_bins, reward_bins, seed)]]
    if n_unsafe > 0:
        chosen.append(unsafe_idx[grid_filter(cost_returns[unsafe_idx], reward_returns[unsafe_idx],
                                             n_unsafe, cost_bins, reward_bins, seed)])
    return np.sort(np.concatenate(chosen))


@dataclass
class CollectResult:
    path: Path
    config: dict
    recorded: int
    """Episodes played (and recorded) during training."""
    dropped_over_max_cost: int
    kept: int
    safe_kept: int
    """Kept episodes whose cost return is within the task's (paper's) cost limit."""
    seconds: float
    """Wall time: one run's training (the longest run's when there are several, run in parallel)."""
    stats: dict = field(default_factory=dict)
    trained_runs: int = 1
    """Runs trained by this call (0 when every run of a resumed collection had finished)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = self.path.name  # the sidecar sits next to the file; no machine's folder in it
        return d


def summarize_returns(trajectories: list[CostedTrajectory], cost_limit: float) -> dict:
    costs = np.array([t.cost_return for t in trajectories])
    rewards = np.array([t.reward_return for t in trajectories])
    safe = costs <= cost_limit
    q = lambda x: [round(float(v), 3) for v in np.quantile(x, [0, 0.25, 0.5, 0.75, 1])]  # noqa: E731
    return {
        "trajectories": len(trajectories),
        "transitions": int(sum(len(t) for t in trajectories)),
        "cost_return_quantiles": q(costs),
        "reward_return_quantiles": q(rewards),
        "safe": int(safe.sum()),
        "best_safe_reward_return": round(float(rewards[safe].max()), 3) if safe.any() else None,
    }


def write_collection(spec: TaskSpec, recorded: list[CostedTrajectory], out_dir: str | Path, *,
                     keep: int, max_cost: float, config: dict, seconds: float,
                     min_safe_share: float = 0.0, cost_bins: int = 60, reward_bins: int = 50,
                     seed: int = 0, stats: dict | None = None, trained_runs: int = 1,
                     log=print) -> CollectResult:
    """The end of every collection, PPO runs or a rule-based driver alike: drop the episodes
    above ``max_cost`` (DSRL's files hold none), thin the rest (:func:`thin_episodes`), and write
    the DSRL file ``<out_dir>/<dsrl id>-<max cost>-<count>.hdf5`` (uncompressed, so that a pack
    sees the redundancy between observations and next observations), its scatter plot (.png) and
    its JSON sidecar (config, counts, ``stats`` added to the returns' statistics), each atomically."""
    ok = [t for t in recorded if t.cost_return <= max_cost]
    if not ok:
        raise RuntimeError(f"{spec.name}: every recorded episode costs more than {max_cost:g}")
    idx = thin_episodes([t.cost_return for t in ok], [t.reward_return for t in ok], keep,
                        spec.cost_limit, min_safe_share, cost_bins, reward_bins, seed)
    kept = [ok[i] for i in idx]
    path = write_dsrl(Path(out_dir) / dsrl_filename(spec, len(kept)), kept, compression=None)
    result = CollectResult(
        path=path, config=as_json_value(config), recorded=len(recorded),
        dropped_over_max_cost=len(recorded) - len(ok), kept=len(kept),
        safe_kept=sum(t.cost_return <= spec.cost_limit for t in kept), seconds=round(seconds, 1),
        stats={"recorded": summarize_returns(recorded, spec.cost_limit),
               "kept": summarize_returns(kept, spec.cost_limit), **(stats or {})},
        trained_runs=trained_runs)
    scatter_plot(path.with_suffix(".png"), spec,
                 [(t.cost_return, t.reward_return) for t in recorded],
                 [(t.cost_return, t.reward_return) for t in kept])
    write_json_atomic(path.with_suffix(".json"), result.to_dict())
    if result.safe_kept < spec.n_safe:
        log(f"[collect {spec.name}] WARNING: only {result.safe_kept} safe trajectories (cost <= "
            f"{spec.cost_limit:g}) kept; the paper's split needs {spec.n_safe}")
    return result


def collect(config: CollectConfig, out_dir: str | Path, log=print) -> CollectResult:
    """Train one agent, record every episode, and write the collection (:func:`write_collection`)."""
    cfg = config.resolved()
    started = time.time()
    recorded = train_and_record(cfg, log=log)
    return write_collection(get_task(cfg.task), recorded, out_dir, keep=cfg.keep,
                            max_cost=cfg.max_cost, config=asdict(cfg),
                            seconds=time.time() - started, cost_bins=cfg.cost_bins,
                            reward_bins=cfg.reward_bins, seed=cfg.seed, log=log)


def as_json_value(x):
    """``x`` as it reads back from JSON (tuples become lists): how configs are saved and compared."""
    if isinstance(x, dict):
        return {k: as_json_value(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [as_json_value(v) for v in x]
    return x


# ---------------------------------------------------------------- several runs per task, resumable

@dataclass(frozen=True)
class CollectRun:
    """One behaviour-agent run of a task's collection: its own seed and cost-limit schedule."""

    index: int
    config: CollectConfig
    """The run's training config (task, seed, episodes, cost-limit schedule), resolved."""

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def name(self) -> str:
        return f"run-{self.index}-seed{self.config.seed}"

    def path(self, out_dir: str | Path) -> Path:
        """Where the run's every recorded episode goes (DSRL format, gzip per column)."""
        return Path(out_dir) / "runs" / self.task / f"{self.name}.hdf5"

    def summary_path(self, out_dir: str | Path) -> Path:
        """The run's JSON, written last: its presence marks the run finished."""
        return self.path(out_dir).with_suffix(".json")


def plan_runs(task: str, runs: int, episodes_per_run: int, seed: int = 0,
              base: CollectConfig | None = None) -> list[CollectRun]:
    """``runs`` runs of ``task``: seeds ``seed, seed+1, ...``; every run starts at DSRL's max cost
    and ends at a different target, spread from a quarter of the task's cost limit up to the limit
    (one run: half the limit), so that together they cover safe policies of several strictness."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    if episodes_per_run < 1:
        raise ValueError(f"episodes per run must be >= 1, got {episodes_per_run}")
    spec = get_task(task)
    base = replace(base or CollectConfig(task=spec.name), task=spec.name, episodes=episodes_per_run)
    ends = [0.5] if runs == 1 else list(np.linspace(0.25, 1.0, runs))
    out = []
    for k in range(runs):
        end = base.cost_limit_end if base.cost_limit_end is not None else float(ends[k]) * spec.cost_limit
        out.append(CollectRun(k, replace(base, seed=seed + k, cost_limit_end=round(end, 3)).resolved()))
    return out


def run_is_finished(run: CollectRun, out_dir: str | Path) -> bool:
    """True when the run's files are there; refuses a finished run made with another config."""
    summary = run.summary_path(out_dir)
    if not (summary.is_file() and run.path(out_dir).is_file()):
        return False
    saved = json.loads(summary.read_text())["config"]
    if saved != as_json_value(asdict(run.config)):
        raise ValueError(
            f"{summary} was made with a different config than this collection's {run.name} "
            f"(e.g. another --episodes-per-run or --runs); use a new --out folder, or delete that run")
    return True


def run_collect_run(run: CollectRun, out_dir: str | Path, log=print) -> dict:
    """Train one run and save EVERY episode it played (atomically: data first, then its JSON)."""
    started = time.time()
    recorded = train_and_record(run.config, log=lambda m: log(f"[{run.name}] {m}"))
    path = write_dsrl(run.path(out_dir), recorded, compression="gzip")
    summary = {"run": run.name, "config": as_json_value(asdict(run.config)),
               "seconds": round(time.time() - started, 1),
               "recorded": summarize_returns(recorded, get_task(run.task).cost_limit)}
    write_json_atomic(run.summary_path(out_dir), summary)
    log(f"[collect {run.task}] {run.name} done: {len(recorded)} episodes in {summary['seconds']:.0f} s "
        f"-> {path}")
    return summary


def sequential_map(fn: Callable, items: Iterable) -> list:
    return [fn(x) for x in items]


def collect_task(runs: list[CollectRun], out_dir: str | Path, keep: int | None = None,
                 map_fn: Callable[[Callable, list], list] = sequential_map, log=print,
                 min_safe_share: float = 0.0) -> CollectResult:
    """Run the runs not finished yet (through ``map_fn(fn, runs)``), then :func:`finish_task`."""
    missing = [r for r in runs if not run_is_finished(r, out_dir)]
    if missing:
        map_fn(lambda r: run_collect_run(r, out_dir, log=log), missing)
    return finish_task(runs, out_dir, keep=keep, trained=len(missing), log=log,
                       min_safe_share=min_safe_share)


def finish_task(runs: list[CollectRun], out_dir: str | Path, keep: int | None = None,
                trained: int = 0, log=print, min_safe_share: float = 0.0) -> CollectResult:
    """Merge the finished runs' episodes, drop those above DSRL's max cost, thin them
    (:func:`thin_episodes`: the grid filter, with at least ``min_safe_share`` safe), and write
    the DSRL file, its JSON summary and ``<file>.png`` (the scatter plot) into ``out_dir``."""
    if not runs or len({r.task for r in runs}) != 1:
        raise ValueError("finish_task needs the runs of exactly one task")
    spec = get_task(runs[0].task)
    cfg = runs[0].config
    keep = keep if keep is not None else cfg.keep
    unfinished = [r.name for r in runs if not run_is_finished(r, out_dir)]
    if unfinished:
        raise RuntimeError(f"{spec.name}: runs {unfinished} have not finished; run them first")
    recorded, run_summaries = [], []
    for r in runs:
        recorded += load_trajectories(r.path(out_dir), spec)
        run_summaries.append(json.loads(r.summary_path(out_dir).read_text()))
    seconds = [s["seconds"] for s in run_summaries]
    runs_stats = [{"run": s["run"], "seed": s["config"]["seed"],
                   "cost_limit_end": s["config"]["cost_limit_end"],
                   "episodes": s["config"]["episodes"], "seconds": s["seconds"]}
                  for s in run_summaries]
    return write_collection(
        spec, recorded, out_dir, keep=keep, max_cost=cfg.max_cost,
        config={**asdict(cfg), "keep": keep, "runs": len(runs), "min_safe_share": min_safe_share},
        seconds=max(seconds), min_safe_share=min_safe_share, cost_bins=cfg.cost_bins,
        reward_bins=cfg.reward_bins, seed=cfg.seed, trained_runs=trained,
        stats={"runs": runs_stats, "run_cpu_seconds": round(sum(seconds), 1)}, log=log)


def scatter_plot(path: str | Path, task, recorded: list[tuple[float, float]] | None,
                 kept: list[tuple[float, float]]) -> Path:
    """Reward return vs cost return: every recorded episode (grey, when given) and the kept ones,
    with the task's cost limit as a vertical line. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=90)
    if recorded:
        c, r = np.asarray(recorded).T
        ax.scatter(c, r, s=3, c="0.75", label=f"recorded ({len(recorded)})", rasterized=True)
    c, r = np.asarray(kept).T
    safe = c <= spec.cost_limit
    ax.scatter(c[safe], r[safe], s=4, c="tab:green", label=f"kept, safe ({safe.sum()})")
    ax.scatter(c[~safe], r[~safe], s=4, c="tab:red", label=f"kept, unsafe ({(~safe).sum()})")
    ax.axvline(spec.cost_limit, color="k", ls="--", lw=1, label=f"cost limit {spec.cost_limit:g}")
    ax.set_xlabel("episode cost return")
    ax.set_ylabel("episode reward return")
    ax.set_title(spec.name)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return path
