"""``run_dspo``: the whole method for one (task, seed, hyperparameters), resumable stage by stage.

Stages and their artefacts under ``workdir`` (each written atomically, with a ``<name>.metrics.json``
sidecar written just before it; a rerun skips every stage whose artefact exists):

1. ``discriminator.pt``  stage 1 training (runner.run("discriminator", ...)), on every trajectory
                         except ``holdout_demos`` demonstrations held out for selection
2. ``labels.npz``        the safety signal of every trajectory, the label-free selection metric
                         (``stage1/...``) and the metrics against the hidden truth
                         (``discriminator/...``, ``neg_return/...``: reported, never selected on)
3. ``diffusion.pt``      stage 2 training (runner.run("diffusion", ...))
4. ``generated.npz``     the generated windows and their conditions
5. ``policy.pt``         behaviour cloning (runner.run("bc", ...)), saved with save_policy
6. ``result.json``       evaluation in the simulator and every metric above

``stop_after`` ends the run after a stage (no evaluation, no ``result.json``): a stage-1-only run
(``stop_after="labels"``) is Table 2's. ``stage1_oracle`` (a diagnostic, never Table 1) skips
stage 1 and uses the hidden truth as the signal; ``stage2_oracle`` (likewise) clones real windows
of the truly safe unlabelled trajectories in place of the generated ones.

Stages 1-5 are data (``TRAINING_STAGES``: name, artefact, ``produce``, ``save``), in the order of
the one stage list, ``dspo_ray.dspo.config.STAGES`` (checked when this module loads); ``run_dspo``
goes through them in order with ``complete_stage``, then evaluates.

Each stage also names the settings it reads (``Stage.settings``; the artefact depends on those of
every stage up to it, :func:`stage_settings`) and its ``code_version``: with ``stage_cache`` a run
takes a stage's artefact from a content-addressed cache shared with other runs when the settings,
the dataset file and the code are the same (``dspo_ray.dspo.stage_cache``), and adds what it
trains to it.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dspo_ray.config import ConfigError, to_dict
from dspo_ray.data import CostLabelFreeData, HiddenTruth, load_task_data, task_dataset_file
from dspo_ray.dspo.bc import policy_from_artefact, train_bc
from dspo_ray.dspo.config import STAGES, DiffusionConfig, DiscriminatorConfig, DSPOConfig
from dspo_ray.dspo.diffusion import train_diffusion
from dspo_ray.dspo.discriminator import (discriminator_metrics, heldout_demo_metrics,
                                         load_discriminator, rerank_signals,
                                         score_trajectories, train_discriminator)
from dspo_ray.dspo.dynamics import (InverseDynamics, fit_dynamics, relabel_actions, rollout,
                                    transitions)
from dspo_ray.dspo.generate import generate, load_generated, save_generated
from dspo_ray.dspo.stage_cache import StageCache, artefact_key, file_identity, settings_values
from dspo_ray.dspo.windows import (RaggedTrajectories, ragged_from_data, sample_windows,
                                   windows_as_trajectories)
from dspo_ray.evaluation import evaluate, evaluation_seed, start_evaluation_workers
from dspo_ray.io import ArtefactError, unreadable, write_json_atomic
from dspo_ray.policies import POLICY_FILE, save_policy
from dspo_ray.provenance import run_provenance
from dspo_ray.saved_policies import load_policy
from dspo_ray.tasks import action_bounds
from dspo_ray.training import LocalRunner, StageRunner, resolve_device, save_atomic


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".metrics.json")


def _load_metrics(path: Path) -> dict[str, Any]:
    side = _sidecar(path)
    return json.loads(side.read_text()) if side.exists() else {}


def bc_dataset_dspo(data, generated: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Safe demonstrations + generated windows as (obs, action) rows (paper: D^S u D^G)."""
    obs = [t.observations for t in data.safe_demos] + [generated["observations"].reshape(
        -1, generated["observations"].shape[-1])]
    act = [t.actions for t in data.safe_demos] + [generated["actions"].reshape(
        -1, generated["actions"].shape[-1])]
    return np.concatenate(obs).astype(np.float32), np.concatenate(act).astype(np.float32)


def heldout_demo_mask(is_demo: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Which demonstrations stage 1 does not train on (``n`` of them, drawn with ``seed``)."""
    demos = np.flatnonzero(is_demo)
    if n >= len(demos):
        raise ValueError(f"holdout_demos: {n} held out of {len(demos)} safe demonstrations leaves "
                         "none to train the discriminator on; use fewer (or 0)")
    mask = np.zeros(len(is_demo), bool)
    if n > 0:
        mask[np.random.default_rng([seed, 1701]).choice(demos, n, replace=False)] = True
    return mask


def subset_trajectories(trajectories: RaggedTrajectories, keep: np.ndarray) -> RaggedTrajectories:
    """The trajectories where ``keep`` is True, in order."""
    starts, lengths = trajectories.starts, trajectories.lengths
    rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i])
                           for i in np.flatnonzero(keep)])
    return RaggedTrajectories(observations=trajectories.observations[rows],
                              actions=trajectories.actions[rows], lengths=lengths[keep],
                              returns=trajectories.returns[keep], is_demo=trajectories.is_demo[keep])


@dataclass(frozen=True)
class StageInputs:
    """What every stage reads besides the artefacts of the stages before it (those it loads from
    ``workdir``, so a resumed run and a fresh one see the same inputs)."""

    config: DSPOConfig
    workdir: Path
    runner: StageRunner
    data: CostLabelFreeData  # no costs in it
    truth: HiddenTruth  # read only by the oracle diagnostic and the reported metrics
    trajectories: RaggedTrajectories
    heldout: np.ndarray
    """Demonstrations stage 1 does not train on (the label-free selection metric's)."""
    device: torch.device
    action_low: np.ndarray
    action_high: np.ndarray
    cache: StageCache | None = None
    """Where finished stages are looked up before training and added after (None: no cache)."""

    def artefact(self, stage: str) -> Path:
        return self.workdir / ARTEFACTS[stage]

    def signals(self) -> np.ndarray:
        with np.load(self.artefact("labels")) as f:
            return f["safety_signal"]


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: ``produce`` computes the artefact and its metrics from the
    inputs (and earlier artefacts); ``save`` writes it to ``artefact`` (atomically)."""

    name: str
    artefact: str
    produce: Callable[[StageInputs], tuple[Any, dict[str, Any]]]
    save: Callable[[Path, Any], Any]
    settings: tuple[str, ...] = ()
    """The DSPOConfig settings (dotted keys, or prefixes: ``"bc"`` is every ``bc.*``) this stage
    reads that no stage before it reads; its artefact depends on :func:`stage_settings`, these
    and every earlier stage's (the stage-cache key)."""
    code_version: int = 1
    """Bump by hand when a change to this stage's code changes what it produces: its cached
    artefacts (and every later stage's) are then trained again, not reused."""
    skipped_by: str | None = None
    """The oracle diagnostic (a DSPOConfig flag) that replaces this stage by the hidden truth."""


# 1. discriminator, on all but the held-out demonstrations (the oracle diagnostic has none)
def train_stage1(run: StageInputs) -> tuple[Any, dict[str, Any]]:
    artefact = run.runner.run("discriminator", train_discriminator, run.workdir,
                              trajectories=subset_trajectories(run.trajectories, ~run.heldout),
                              config=run.config.discriminator,
                              max_timestep=run.data.task.max_episode_steps, seed=run.config.seed)
    return artefact, {}


# 2. labels: the signal of every trajectory, the label-free selection metric (stage1/...), and the
# metrics that read the hidden truth (discriminator/..., neg_return/...: reported only)
def label_trajectories(run: StageInputs) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    config, trajectories, heldout = run.config, run.trajectories, run.heldout
    is_demo = trajectories.is_demo
    out: dict[str, Any] = {}
    if config.stage1_oracle:
        # diagnostic upper bound: the hidden truth as the signal (demonstrations are safe)
        signals = run.truth.is_safe.astype(np.float64)
        out["diagnostic/oracle_signal"] = 1
    else:
        artefact = torch.load(run.artefact("discriminator"), map_location="cpu",
                              weights_only=False)
        # scored as the artefact's config says (window, reduction)
        signals = score_trajectories(load_discriminator(artefact), trajectories, device=run.device)
        signals = rerank_signals(signals, trajectories.returns, is_demo,
                                 config.discriminator.signal_rerank)
        out.update(heldout_demo_metrics(signals, is_demo, heldout, trajectories.returns))
    labels = dict(safety_signal=signals, returns=trajectories.returns, is_demo=is_demo,
                  lengths=trajectories.lengths, heldout_demo=heldout)
    out["stage1/n_heldout_demos"] = int(heldout.sum())
    out["stage1/min_demo_signal"] = float(signals[is_demo].min())
    out["stage1/mean_unlabelled_signal"] = float(signals[~is_demo].mean())
    out.update(discriminator_metrics(signals, is_demo, run.truth,
                                     config.discriminator.label_threshold,
                                     returns=trajectories.returns))
    return labels, out


# 3. diffusion
def train_stage2(run: StageInputs) -> tuple[Any, dict[str, Any]]:
    artefact = run.runner.run("diffusion", train_diffusion, run.workdir,
                              trajectories=run.trajectories, signals=run.signals(),
                              config=run.config.diffusion, seed=run.config.seed)
    return artefact, {}


# 4. generation (optionally kept only where the stage-1 signal rates a window as safe as the
# demonstrations' windows: generation.signal_filter_quantile; then optionally made consistent
# with a dynamics model fitted on the learner's data: generation.consistency)
def generate_windows(run: StageInputs) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    config = run.config
    if config.stage2_oracle:
        return oracle_windows(run)
    artefact = torch.load(run.artefact("diffusion"), map_location="cpu", weights_only=False)
    demo = run.trajectories.is_demo
    demo_returns, demo_signals = run.trajectories.returns[demo], run.signals()[demo]
    anchor = config.generation.anchor
    anchor_states = (None if anchor == "none" else run.trajectories.observations_of(
        demo if anchor == "demonstrations" else ~demo))

    def draw(seed: int) -> dict[str, np.ndarray]:
        return generate(artefact, config.generation, config.diffusion.guidance_weight,
                        demo_returns, demo_signals, run.action_low,
                        run.action_high, seed=seed, device=run.device,
                        autocast=config.diffusion.autocast, compile=config.diffusion.compile,
                        anchor_states=anchor_states)

    generated = draw(config.seed)
    metrics: dict[str, Any] = {}
    if config.generation.signal_filter_quantile is not None:
        generated, metrics = filter_by_signal(run, generated, draw)
    n = len(generated["observations"])  # 0 where a filter let no window through
    if config.generation.consistency != "none" and n:
        generated, consistency_metrics = make_consistent(run, generated)
        metrics.update(consistency_metrics)
    mean = lambda x: float(np.mean(x)) if n else float("nan")  # noqa: E731
    return generated, {"generation/n_windows": n,
                       "generation/return_condition_mean": mean(generated["return_condition"]),
                       "generation/safety_condition": mean(generated["safety_condition"]),
                       "generation/action_abs_mean": mean(np.abs(generated["actions"])),
                       **metrics}


def oracle_windows(run: StageInputs) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``stage2_oracle``: in place of the generated windows, as many real windows of the same
    length, cut at random from the unlabelled trajectories the hidden truth says are safe: what a
    perfect generator could hand behaviour cloning (a diagnostic upper bound, never Table 1)."""
    config = run.config
    safe_unlabelled = run.truth.is_safe & ~run.trajectories.is_demo
    windows = sample_windows(run.trajectories, safe_unlabelled, config.diffusion.horizon,
                             np.random.default_rng(config.seed), config.generation.n_windows)
    n, horizon = len(windows), config.diffusion.horizon
    no_condition = np.full(n, np.nan, np.float32)  # real windows: nothing conditioned them
    return {"observations": windows.observations.reshape(n, horizon, -1),
            "actions": windows.actions.reshape(n, horizon, -1),
            "return_condition": no_condition, "safety_condition": no_condition,
            "guidance_weight": np.float32(np.nan)}, {
        "generation/n_windows": n, "diagnostic/oracle_windows": 1,
        "diagnostic/oracle_windows_trajectories": int(safe_unlabelled.sum())}


def make_consistent(run: StageInputs, generated: dict[str, np.ndarray]
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The windows made consistent with a dynamics model fitted on all the learner's trajectories
    (``generation.consistency``): their states after the first rolled out from the generated
    actions (``dynamics_rollout``), or their actions inferred from the generated states
    (``inverse_dynamics``)."""
    traj, config = run.trajectories, run.config
    data = transitions(traj, np.ones(len(traj), bool))
    steps, seed = config.generation.dynamics_steps, config.seed
    if config.generation.consistency == "dynamics_rollout":
        states = rollout(fit_dynamics(*data, steps=steps, seed=seed),
                         generated["observations"][:, 0], generated["actions"],
                         traj.observations.min(0), traj.observations.max(0))
        # how far the generated states were from consistent ones, in units of each state
        # dimension's spread in the data (0: the generator's windows already followed the model)
        moved = np.abs(states - generated["observations"]) / (traj.observations.std(0) + 1e-6)
        return {**generated, "observations": states}, {
            "generation/rollout_state_change": float(np.median(moved.mean((1, 2))))}
    actions = relabel_actions(fit_dynamics(*data, steps=steps, seed=seed, model_class=InverseDynamics),
                              generated["observations"], run.action_low, run.action_high)
    # the same for the actions, in units of each action dimension's spread in the data
    moved = np.abs(actions - generated["actions"][:, :-1]) / (traj.actions.std(0) + 1e-6)
    return {**generated, "observations": generated["observations"][:, :-1], "actions": actions}, {
        "generation/relabel_action_change": float(np.median(moved.mean((1, 2))))}


def filter_by_signal(run: StageInputs, first: dict[str, np.ndarray],
                     draw: Callable[[int], dict[str, np.ndarray]]
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The generated windows whose discriminator signal reaches the threshold (the configured
    quantile of the demonstrations' window signals), drawing again (seeds ``seed + 100_003 k``)
    until ``n_windows`` pass or ``filter_max_draws`` rounds were drawn; the first round is the
    unfiltered generation's."""
    config = run.config.generation
    model = load_discriminator(torch.load(run.artefact("discriminator"), map_location="cpu",
                                          weights_only=False))
    horizon = first["observations"].shape[1]
    demo_windows = sample_windows(run.trajectories, run.trajectories.is_demo, horizon,
                                  np.random.default_rng(run.config.seed))
    threshold = float(np.quantile(score_trajectories(model, demo_windows, window=horizon,
                                                     device=run.device),
                                  config.signal_filter_quantile))
    per_window = ("observations", "actions", "return_condition", "safety_condition")
    kept: dict[str, list[np.ndarray]] = {k: [] for k in per_window}
    drawn = passed = 0
    for k in range(config.filter_max_draws):
        batch = first if k == 0 else draw(run.config.seed + 100_003 * k)
        signal = score_trajectories(model, windows_as_trajectories(batch["observations"],
                                                                   batch["actions"]),
                                    window=horizon, device=run.device)
        keep = signal >= threshold
        drawn, passed = drawn + len(keep), passed + int(keep.sum())
        for key in per_window:
            kept[key].append(batch[key][keep])
        if passed >= config.n_windows:
            break
    filtered = {key: np.concatenate(parts)[:config.n_windows] for key, parts in kept.items()}
    filtered["guidance_weight"] = first["guidance_weight"]
    return filtered, {"generation/filter_threshold": threshold,
                      "generation/filter_kept_share": passed / drawn,
                      "generation/filter_drawn": drawn}


# 5. behaviour cloning on D^S u D^G
def clone_behaviour(run: StageInputs) -> tuple[Any, dict[str, Any]]:
    obs, act = bc_dataset_dspo(run.data, load_generated(run.artefact("generation")))
    artefact = run.runner.run("bc", train_bc, run.workdir, observations=obs, actions=act,
                              config=run.config.bc, action_low=run.action_low,
                              action_high=run.action_high, seed=run.config.seed)
    return policy_from_artefact(artefact), {"bc/n_samples": int(len(obs))}


def save_model(path: Path, artefact: Any) -> None:
    save_atomic(artefact, path)


# What each stage reads, from its code above: the data and split (task, dataset, split.*, plus
# holdout_demos and split.seed for the held-out demonstrations), the seed, its own section. Labels
# read what stage 1 already does (the discriminator's scoring window and reduction,
# label_threshold, the split's cost limit for the reported metrics, stage1_oracle) and
# discriminator.signal_rerank, which training the discriminator does not read. Diffusion
# training reads every diffusion.* but guidance_weight, which only sampling (generation) reads.
DISCRIMINATOR_TRAINING_SETTINGS = tuple(f"discriminator.{f.name}" for f in fields(DiscriminatorConfig)
                                        if f.name != "signal_rerank")
DIFFUSION_TRAINING_SETTINGS = tuple(f"diffusion.{f.name}" for f in fields(DiffusionConfig)
                                    if f.name != "guidance_weight")
TRAINING_STAGES = (
    Stage("discriminator", "discriminator.pt", train_stage1, save_model,
          settings=("task", "dataset", "split", "seed", "holdout_demos", "stage1_oracle",
                    *DISCRIMINATOR_TRAINING_SETTINGS), skipped_by="stage1_oracle"),
    Stage("labels", "labels.npz", label_trajectories, save_generated,  # the atomic npz writer
          settings=("discriminator.signal_rerank",)),
    Stage("diffusion", "diffusion.pt", train_stage2, save_model,
          settings=DIFFUSION_TRAINING_SETTINGS, skipped_by="stage2_oracle"),
    Stage("generation", "generated.npz", generate_windows, save_generated,
          settings=("generation", "diffusion.guidance_weight", "stage2_oracle")),
    Stage("bc", POLICY_FILE, clone_behaviour, save_policy, settings=("bc",)),
)
"""Every stage before evaluation, in the order of :data:`dspo_ray.dspo.config.STAGES` (the one
stage list; checked below); evaluation (``result.json``) ends the run."""
EVALUATION_SETTINGS = ("eval_episodes",)
"""What evaluation reads besides the policy (it is never cached: result.json is the run's own)."""
RESULT_NEUTRAL_SETTINGS = frozenset({"eval_workers"})
"""Settings no result depends on: a run resumes with other values (``_check_same_config``)."""
SETTINGS_WITHOUT_ARTEFACTS = RESULT_NEUTRAL_SETTINGS | {"profile", "stop_after"}
"""Settings no stage artefact depends on: ``profile`` only names where the other values came
from, ``stop_after`` where a run ends, not what a stage makes. Every other DSPOConfig setting is
some stage's (tests/test_stage_cache.py checks that a new one is placed)."""
ARTEFACTS = {**{s.name: s.artefact for s in TRAINING_STAGES}, "evaluation": "result.json"}
if tuple(s.name for s in TRAINING_STAGES) + ("evaluation",) != STAGES:
    raise RuntimeError(f"TRAINING_STAGES ({', '.join(s.name for s in TRAINING_STAGES)}, then "
                       f"evaluation) disagrees with dspo_ray.dspo.config.STAGES "
                       f"({', '.join(STAGES)}); change both together")


def stage_settings(name: str) -> tuple[str, ...]:
    """The settings (dotted keys or prefixes) the stage's artefact depends on: its own and those
    of every stage before it."""
    index = [s.name for s in TRAINING_STAGES].index(name)
    return tuple(key for s in TRAINING_STAGES[:index + 1] for key in s.settings)


def stage_keys(config: DSPOConfig, dataset_file: Path) -> dict[str, str]:
    """Every training stage's cache key (``dspo_ray.dspo.stage_cache.artefact_key``) for a run
    of ``config`` on ``dataset_file``."""
    values, dataset = to_dict(config), file_identity(dataset_file)
    keys = {}
    for i, stage in enumerate(TRAINING_STAGES):
        versions = {s.name: s.code_version for s in TRAINING_STAGES[:i + 1]}
        keys[stage.name] = artefact_key(stage.name,
                                        settings_values(values, stage_settings(stage.name)),
                                        dataset, versions)
    return keys


def run_dspo(config: DSPOConfig, workdir: str | Path, runner: StageRunner | None = None,
             report: Callable[[dict], None] | None = None,
             train_only: bool = False, stage_cache: str | Path | None = None) -> dict[str, Any]:
    """Run (or resume) DSPO; returns the flat metrics dict also saved as ``result.json`` (with
    ``stop_after``: the metrics up to that stage, nothing saved beyond the stages' sidecars).

    ``train_only``: return after the training stages, with their metrics (a sweep trial trains
    on a Ray Train worker group, then calls this again in its own process to evaluate).

    ``stage_cache``: a folder shared with other runs (``dspo_ray.dspo.stage_cache``): a stage
    whose artefact is there for the same settings, dataset file and code is copied from it
    instead of trained (one line on stdout says so), and every stage trained here is added to
    it. Not a setting: the results are the same with or without it."""
    workdir = Path(workdir)
    _check_same_config(workdir / "config.json", to_dict(config))
    discard_unreadable_artefacts(workdir)
    result_path = workdir / ARTEFACTS["evaluation"]
    if result_path.exists():
        result = json.loads(result_path.read_text())
        if report is not None:
            report({"stage": "evaluation", **result})
        return result

    # inputs first: nothing is written for a run whose data or split cannot be used
    dataset_file = task_dataset_file(config.task, config.dataset)
    data, truth = load_task_data(config.task, dataset_file, config.split)
    workdir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(workdir / "config.json", to_dict(config))
    if not train_only and config.stop_after is None:
        # the evaluation's worker processes start now, beside training, not after it
        start_evaluation_workers(data.task, config.eval_workers)
    trajectories = ragged_from_data(data)  # learners' data only: no costs anywhere in it
    action_low, action_high = action_bounds(data.task)
    run = StageInputs(
        config=config, workdir=workdir, runner=runner or LocalRunner(), data=data, truth=truth,
        trajectories=trajectories, device=resolve_device(), action_low=action_low,
        action_high=action_high,
        heldout=(np.zeros(len(trajectories), bool) if config.stage1_oracle else
                 heldout_demo_mask(trajectories.is_demo, config.holdout_demos, config.split.seed)),
        cache=(None if stage_cache is None else
               StageCache(Path(stage_cache), stage_keys(config, dataset_file))))
    metrics: dict[str, Any] = {"task": data.task.name, "seed": config.seed,
                               "data/n_safe_demos": len(data.safe_demos),
                               "data/n_unlabelled": len(data.unlabelled),
                               **run_provenance(dataset_file)}

    for stage in TRAINING_STAGES:
        if not (stage.skipped_by and getattr(config, stage.skipped_by)):
            metrics.update(complete_stage(stage, run))
            if report is not None:
                report({"stage": stage.name, **metrics})
        if config.stop_after == stage.name:
            metrics["run/stopped_after_stage"] = STAGES.index(stage.name) + 1
            return metrics
    if train_only:
        return metrics

    # 6. evaluation
    start = time.perf_counter()
    policy = load_policy(run.artefact("bc"))
    result = evaluate(policy, data.task, episodes=config.eval_episodes,
                      seed=evaluation_seed(config.seed), workers=config.eval_workers)
    metrics.update({f"eval/{k}": v for k, v in result.to_dict().items() if k != "task"})
    metrics["time/evaluation_s"] = time.perf_counter() - start
    metrics["time/total_s"] = sum(v for k, v in metrics.items()
                                  if k.startswith("time/") and k.endswith("_s")
                                  and not k.endswith("_cpu_s") and k != "time/total_s")
    write_json_atomic(result_path, metrics)
    if report is not None:
        report({"stage": "evaluation", **metrics})
    return metrics


def complete_stage(stage: Stage, run: StageInputs) -> dict[str, Any]:
    """The stage's metrics, running it first unless its artefact exists (or is in the stage
    cache). Its metrics sidecar is written before the artefact, so an existing artefact always
    has its metrics."""
    path = run.artefact(stage.name)
    files = (_sidecar(path).name, path.name)  # in the order they are written
    if not path.exists() and run.cache is not None:
        entry = run.cache.fetch(stage.name, files, run.workdir, _unreadable_reason)
        if entry is not None:
            print(f"stage {stage.name} reused from cache {entry}", flush=True)
            _discard_progress(run.workdir, stage.name)
    if not path.exists():
        # time spent by earlier, interrupted attempts at this stage counts too
        spent = _spent_path(run.workdir, stage.name)
        before = _read_spent(spent)
        start, cpu_start = time.perf_counter(), time.process_time()
        try:
            artefact, stage_metrics = stage.produce(run)
        except BaseException:
            write_json_atomic(spent, {"s": before["s"] + time.perf_counter() - start,
                                      "cpu_s": before["cpu_s"] + time.process_time() - cpu_start})
            raise
        stage_metrics[f"time/{stage.name}_s"] = before["s"] + time.perf_counter() - start
        # this process's CPU seconds: on a shared machine, the contention-free cost
        stage_metrics[f"time/{stage.name}_cpu_s"] = (before["cpu_s"] + time.process_time()
                                                     - cpu_start)
        write_json_atomic(_sidecar(path), stage_metrics)
        stage.save(path, artefact)
        _discard_progress(run.workdir, stage.name)
        if run.cache is not None:
            run.cache.publish(stage.name, files, run.workdir)
    return _load_metrics(path)


def _discard_progress(workdir: Path, name: str) -> None:
    """A finished stage's in-progress checkpoint (LocalRunner's naming) and time-spent record are
    no longer needed (its time is in its metrics sidecar)."""
    (workdir / f"{name}.in-progress.pt").unlink(missing_ok=True)
    _spent_path(workdir, name).unlink(missing_ok=True)


def _check_same_config(path: Path, config: dict[str, Any]) -> None:
    """Resuming with other settings would mix artefacts of two configs: refuse."""
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ArtefactError(f"{path} is unreadable ({type(e).__name__}), so the run in {path.parent} "
                          f"cannot be checked against these settings; start over with "
                          f"'rm -r {path.parent}' or use another folder") from None
    changed = sorted(k for k in set(old) | set(config)
                     if k not in RESULT_NEUTRAL_SETTINGS and old.get(k) != config.get(k))
    if changed:
        raise ConfigError(f"{path.parent} holds a DSPO run with different settings ({', '.join(changed)} "
                         "differ); use a fresh folder, or delete the folder to start over")




def _spent_path(workdir: Path, name: str) -> Path:
    return workdir / f"{name}.time-spent.json"


def _read_spent(path: Path) -> dict[str, float]:
    try:
        spent = json.loads(path.read_text())
        return {"s": float(spent["s"]), "cpu_s": float(spent["cpu_s"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"s": 0.0, "cpu_s": 0.0}


def _load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def _load_npz(path: Path) -> None:
    with np.load(path) as f:
        for key in f.files:
            f[key]


_LOADERS = {".pt": _load_torch, ".npz": _load_npz, ".json": lambda p: json.loads(p.read_text())}
"""How each kind of stage file is read to tell whether it is intact."""


def _unreadable_reason(path: Path) -> str | None:
    return unreadable(path, _LOADERS[path.suffix])


def discard_unreadable_artefacts(workdir: Path) -> list[Path]:
    """Delete (with a warning naming it) every stage artefact, metrics sidecar and in-progress
    checkpoint in ``workdir`` that no longer loads (a truncated or corrupted file), so that the
    run recomputes it instead of failing on every rerun. Returns what was deleted."""
    candidates = []
    for name in STAGES:
        artefact = workdir / ARTEFACTS[name]
        candidates += [artefact, _sidecar(artefact), workdir / f"{name}.in-progress.pt"]
    discarded = []
    for path in candidates:
        if not path.is_file():
            continue
        reason = _unreadable_reason(path)
        if reason is not None:
            print(f"warning: {path} is unreadable ({reason}); deleted, its stage runs again",
                  file=sys.stderr, flush=True)
            path.unlink()
            # an artefact and its metrics sidecar go together: the stage makes both again
            if path.name in ARTEFACTS.values():
                _sidecar(path).unlink(missing_ok=True)
            elif path.name.endswith(".metrics.json"):
                path.with_name(path.name[: -len(".metrics.json")]).unlink(missing_ok=True)
            discarded.append(path)
    return discarded
