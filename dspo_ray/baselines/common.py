"""Pieces every baseline shares: replay sampling, critics, a Gaussian actor, the training loop
(``train_steps``: logging and resumable checkpoints), config overrides, the ``METHODS`` registry
and ``run_method`` (load data -> train -> save -> evaluate -> metrics).

Every baseline learns from :class:`~dspo_ray.data.CostLabelFreeData` only: safe demonstrations and
unlabelled trajectories, states/actions/rewards, never a cost. ``run_method`` drops the hidden
truth that ``load_task_data`` returns beside the data before any method sees anything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import math
import sys
import time
import typing
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from dspo_ray.config import ConfigError, from_dict  # noqa: F401  (ConfigError re-exported)
from dspo_ray.data import CostLabelFreeData, Trajectory, stack_transitions
from dspo_ray.policies import MLPPolicy, ObservationNormalized, mlp
from dspo_ray.tasks import TaskSpec, action_bounds  # noqa: F401  (re-exported to the methods)
from dspo_ray.training import LocalContext

Log = Callable[[dict], None] | None


# ----------------------------------------------------------------------------- seeding

def seed_everything(seed: int) -> torch.Generator:
    """Seed numpy and torch; return a CPU generator for minibatch indices (reproducible draws)."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- replay sampling

class TransitionSampler:
    """All transitions of some trajectories as device tensors; uniform minibatches.

    ``dones`` is the terminal flag only: a time-limit cut (timeout) is not the end of the MDP, so
    the value of its next state is still bootstrapped.
    """

    def __init__(self, trajectories: typing.Sequence[Trajectory], device: torch.device,
                 rewards: np.ndarray | None = None):
        stacked = stack_transitions(list(trajectories))
        as_t = lambda x: torch.as_tensor(np.asarray(x, np.float32), device=device)  # noqa: E731
        self.observations = as_t(stacked["observations"])
        self.actions = as_t(stacked["actions"])
        self.rewards = as_t(stacked["rewards"] if rewards is None else rewards)
        self.next_observations = as_t(stacked["next_observations"])
        self.dones = as_t(stacked["terminals"])
        self.size = len(self.rewards)
        if rewards is not None and len(rewards) != self.size:
            raise ValueError(f"{len(rewards)} rewards given for {self.size} transitions")

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        idx = torch.randint(self.size, (batch_size,), generator=generator).to(self.rewards.device)
        return {"observations": self.observations[idx], "actions": self.actions[idx],
                "rewards": self.rewards[idx], "next_observations": self.next_observations[idx],
                "dones": self.dones[idx]}


def all_observations(trajectories: typing.Sequence[Trajectory]) -> np.ndarray:
    return np.concatenate([t.observations for t in trajectories])


def return_range_scale(trajectories: typing.Sequence[Trajectory], target: float = 1000.0) -> float:
    """IQL's locomotion reward scaling: ``target / (max return - min return)`` over trajectories."""
    returns = np.array([t.reward_return for t in trajectories])
    spread = float(returns.max() - returns.min())
    return target / spread if spread > 1e-8 else 1.0


# ----------------------------------------------------------------------------- networks

class QNetwork(ObservationNormalized):
    """Q(s, a): an MLP on the normalised state and the action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__(obs_dim)
        self.net = mlp([obs_dim + act_dim, *hidden, 1])

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([self.normalize(observations), actions], -1)).squeeze(-1)


class ValueNetwork(ObservationNormalized):
    """V(s): an MLP on the normalised state."""

    def __init__(self, obs_dim: int, hidden: tuple[int, ...] = (256, 256)):
        super().__init__(obs_dim)
        self.net = mlp([obs_dim, *hidden, 1])

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(observations)).squeeze(-1)


class StateActionClassifier(ObservationNormalized):
    """A logit for (s, a [, extra features]): the discriminators of DWBC and RGM."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256),
                 extra_dim: int = 0):
        super().__init__(obs_dim)
        self.net = mlp([obs_dim + act_dim + extra_dim, *hidden, 1])

    def forward(self, observations: torch.Tensor, actions: torch.Tensor,
                extra: torch.Tensor | None = None) -> torch.Tensor:
        parts = [self.normalize(observations), actions] + ([extra] if extra is not None else [])
        return self.net(torch.cat(parts, -1)).squeeze(-1)


class TanhGaussianActor(nn.Module):
    """A tanh-squashed Gaussian over the action box, whose mean action IS an :class:`MLPPolicy`.

    ``deterministic`` (the MLPPolicy) is what gets saved and evaluated: the squashed mean.
    """

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(self, task: TaskSpec, hidden: tuple[int, ...], action_low: np.ndarray,
                 action_high: np.ndarray):
        super().__init__()
        self.deterministic = MLPPolicy(task.obs_dim, task.act_dim, hidden, action_low, action_high)
        self.log_std_net = mlp([task.obs_dim, *hidden, task.act_dim])

    def _pre_tanh(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.deterministic.normalize(observations)
        log_std = self.log_std_net(x).clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        return self.deterministic.net(x), log_std.exp()

    def sample(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions and their log-density (summed over action dimensions)."""
        mu, std = self._pre_tanh(observations)
        u = mu + std * torch.randn_like(mu)
        y = torch.tanh(u)
        log_prob = normal_log_prob(u, mu, std) - torch.log1p(-y.pow(2) + 1e-6) \
            - torch.log(self.deterministic.action_scale)
        return y * self.deterministic.action_scale + self.deterministic.action_offset, log_prob.sum(-1)

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Per-dimension log-density of given actions (B, act_dim); actions at the bounds clipped."""
        p = self.deterministic
        mu, std = self._pre_tanh(observations)
        y = ((actions - p.action_offset) / p.action_scale).clamp(-1 + 1e-5, 1 - 1e-5)
        u = torch.atanh(y)
        return normal_log_prob(u, mu, std) - torch.log1p(-y.pow(2) + 1e-6) - torch.log(p.action_scale)


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per-dimension log-density of ``x`` under N(mean, std^2)."""
    return -0.5 * ((x - mean) / std).pow(2) - torch.log(std) - 0.5 * math.log(2 * math.pi)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)


def should_log(step: int, every: int, total: int) -> bool:
    return step == 1 or step % every == 0 or step == total


def _log_record(metrics: dict[str, float], step: int) -> dict[str, float]:
    return {"step": step, **{k: float(v) for k, v in metrics.items()}}


def emit(log: Log, metrics: dict[str, float], step: int) -> None:
    if log is not None:
        log(_log_record(metrics, step))


# ----------------------------------------------------------------------------- the training loop

def train_steps(phase: str, config: Any, data: CostLabelFreeData, workdir: str | Path | None,
                log: Log, state: dict[str, Any], generator: torch.Generator,
                update: Callable[[], dict[str, float]], steps: int | None = None,
                inputs: np.ndarray | None = None) -> None:
    """The loop every baseline trains with: ``update()`` (one gradient step, returning its
    losses) for steps 1..``steps`` (default ``config.steps``), losses to ``log`` as
    :func:`should_log` says, resumable.

    Every ``config.log_every`` steps and at the last one, ``state`` (name -> the learner's
    modules, optimisers, LR schedules, tensors and plain counters; ``vars(learner)`` works) and
    every random generator (``generator``, torch's, CUDA's, numpy's) are checkpointed to
    ``<workdir>/<phase>.in-progress.pt`` (LocalContext: written atomically; an unreadable one is
    named and ignored). A rerun of the phase with the same ``config``, ``data`` and ``inputs``
    (anything else it trains on, e.g. corrected rewards) restores them and continues after the
    checkpointed step, ending where an uninterrupted run ends (same device); the checkpointed
    step's losses are logged again, so the last logged losses are the same too. A checkpoint of
    other settings or data is named and the phase starts over. ``workdir=None``: no checkpoints.
    """
    steps = config.steps if steps is None else steps
    path = None if workdir is None else Path(workdir) / f"{phase}.in-progress.pt"
    ctx = LocalContext(checkpoint_path=path, log=[log] if log is not None else [])
    identity = _checkpoint_identity(phase, config, data, inputs)
    first = 1
    saved = ctx.load_checkpoint()
    if saved is not None and saved.get("identity") != identity:
        print(f"warning: checkpoint {path} is of other settings or data; {phase} starts from "
              "the beginning", file=sys.stderr, flush=True)
    elif saved is not None:
        _restore_state(state, saved["state"])
        _restore_random_state(saved["random"], generator)
        first = saved["step"] + 1
        ctx.report(saved["logged"])
    for step in range(first, steps + 1):
        metrics = update()
        if not should_log(step, config.log_every, steps):
            continue
        record = _log_record(metrics, step)
        checkpoint = None
        if step % config.log_every == 0 or step == steps:
            checkpoint = {"identity": identity, "step": step, "logged": record,
                          "state": _state_to_save(state), "random": _random_state(generator)}
        ctx.report(record, checkpoint=checkpoint)


def _checkpoint_identity(phase: str, config: Any, data: CostLabelFreeData,
                         inputs: np.ndarray | None) -> str:
    """A digest of what a phase's result depends on: its name, settings, data and inputs."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((phase, type(config).__name__, dataclasses.asdict(config), data.task.name,
                        len(data.safe_demos), len(data.unlabelled))).encode())
    for t in data.all_trajectories:
        for array in (t.observations, t.actions, t.rewards):
            digest.update(np.ascontiguousarray(array).tobytes())
    if inputs is not None:
        digest.update(np.ascontiguousarray(inputs).tobytes())
    return digest.hexdigest()


def _is_plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False


def _state_to_save(state: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in state.items():
        if hasattr(value, "state_dict") and hasattr(value, "load_state_dict"):
            out[name] = value.state_dict()  # modules, optimisers, LR schedules
        elif isinstance(value, torch.Tensor) or _is_plain(value):
            out[name] = value
    return out  # anything else (the config, samplers) is rebuilt by the rerun itself


def _restore_state(state: dict[str, Any], saved: dict[str, Any]) -> None:
    for name, value in saved.items():
        current = state[name]
        if hasattr(current, "load_state_dict"):
            current.load_state_dict(value)
        elif isinstance(current, torch.Tensor):
            with torch.no_grad():  # in place: optimisers hold this very tensor
                current.copy_(value)
        else:
            state[name] = value


def _random_state(generator: torch.Generator) -> dict[str, Any]:
    return {"generator": generator.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "numpy": np.random.get_state()}


def _restore_random_state(saved: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda"])
    np.random.set_state(saved["numpy"])


# ----------------------------------------------------------------------------- configs

def config_from_dict(cls: type, overrides: dict[str, Any] | None) -> Any:
    """Build ``cls`` from its defaults and ``overrides`` with the project's validation
    (``dspo_ray.config.from_dict``): an unknown key, a wrong type or a value out of range raises
    :class:`ConfigError` naming the key."""
    return from_dict(cls, dict(overrides or {}))


# ----------------------------------------------------------------------------- registry

# The method registry: method name -> (module under dspo_ray.baselines, its config class). The
# modules import this one, so get_method imports a method's module when it is asked for.
METHODS: dict[str, tuple[str, str]] = {
    "bc_all": ("bc", "BCAllConfig"), "bc_safe": ("bc", "BCSafeConfig"),
    "td3bc": ("td3bc", "TD3BCConfig"), "iql": ("iql", "IQLConfig"), "cql": ("cql", "CQLConfig"),
    "dwbc": ("dwbc", "DWBCConfig"), "rgm": ("rgm", "RGMConfig"), "cdtv": ("cdtv", "CDTVConfig"),
}


class UnknownMethodError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_method(name: str) -> tuple[type, Callable]:
    """``(ConfigClass, train)`` of a method of :data:`METHODS`."""
    if name not in METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    module_name, config_name = METHODS[name]
    module = importlib.import_module(f"dspo_ray.baselines.{module_name}")
    return getattr(module, config_name), module.train


def run_method(method: str, task: str, seed: int = 0, overrides: dict[str, Any] | None = None,
               dataset: str | Path | None = None, workdir: str | Path = "runs/baseline",
               eval_episodes: int = 20, eval_workers: int | None = None,
               log: Log = None, split: Any = None) -> dict[str, Any]:
    """Load ``task``'s cost-label-free data, train ``method``, save and evaluate its policy.

    Returns a flat metrics dict (``eval/normalized_reward``, ``eval/normalized_cost``,
    ``eval/safe``, ``time/train_s``, the last logged ``losses/*``...). The policy is saved to
    ``workdir/policy.pt`` (:data:`~dspo_ray.policies.POLICY_FILE`); training checkpoints go to
    ``workdir/<phase>.in-progress.pt``, and a rerun in the same ``workdir`` (a retried trial)
    resumes from them (:func:`train_steps`). Evaluation episodes start at
    ``evaluation_seed(seed)``, as DSPO's do. ``split``: a :class:`~dspo_ray.data.SplitConfig`
    (default: the paper's Table 3 split).
    """
    from dspo_ray.data import load_task_data, task_dataset_file
    from dspo_ray.evaluation import evaluate, evaluation_seed, start_evaluation_workers
    from dspo_ray.policies import POLICY_FILE, save_policy
    from dspo_ray.provenance import run_provenance

    config_cls, train_fn = get_method(method)
    config = config_from_dict(config_cls, {**(overrides or {}), "seed": seed})
    dataset_file = task_dataset_file(task, dataset)
    data, _hidden_truth_not_for_learners = load_task_data(task, dataset_file, split)
    del _hidden_truth_not_for_learners
    start_evaluation_workers(data.task, eval_workers)  # ready when training ends
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    last: dict[str, float] = {}

    def record(metrics: dict) -> None:
        last.update(metrics)
        if log is not None:
            log(metrics)

    start = time.perf_counter()
    policy = train_fn(config, data, workdir, record)
    train_s = time.perf_counter() - start
    save_policy(workdir / POLICY_FILE, policy)
    start = time.perf_counter()
    result = evaluate(policy, data.task, episodes=eval_episodes, seed=evaluation_seed(seed),
                      workers=eval_workers)
    eval_s = time.perf_counter() - start
    metrics: dict[str, Any] = {"method": method, "task": data.task.name, "seed": seed}
    metrics.update({f"eval/{k}": v for k, v in result.to_dict().items() if k != "task"})
    metrics.update({k: v for k, v in last.items() if k.startswith("losses/")})
    metrics.update({"time/train_s": train_s, "time/eval_s": eval_s, "train/steps": config.steps,
                    "data/n_safe_demos": len(data.safe_demos),
                    "data/n_unlabelled": len(data.unlabelled)})
    metrics.update(run_provenance(dataset_file))
    metrics.update({f"config/{k}": (list(v) if isinstance(v, tuple) else v)
                    for k, v in dataclasses.asdict(config).items()})
    return metrics
