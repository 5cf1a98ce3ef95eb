"""DSPO's configuration: one dataclass per stage, the paper's values (Table 4) as defaults.

Two profiles: ``paper`` (Table 4; where the paper is silent, the closest public work, as each
field's docstring says) and ``quick`` (the whole pipeline plus a 20-episode evaluation in
under 10 minutes on 2 CPU cores, for a Bullet task of 300-step episodes). A YAML file or a sweep
sample names a profile and overrides single keys on top of it; everything is validated on load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

from dspo_ray.config import (ConfigError, bounded, deep_merge, from_dict, load_yaml, to_dict,
                             unflatten)
from dspo_ray.data import SplitConfig

STAGES = ("discriminator", "labels", "diffusion", "generation", "bc", "evaluation")
"""DSPO's stages in the order run_dspo (pipeline.py) runs them; a run's progress is the number of
stages it finished. Every stage but the last can end a run (``DSPOConfig.stop_after``)."""
StopAfter = Literal[STAGES[:-1]]


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Stage 1: the trajectory-wise safety discriminator (paper section 3.1)."""

    variant: Literal["safety_transformer", "mlp"] = "safety_transformer"
    """The SafetyTransformer, or the per-step MLP of similar size (the paper's Figure 4 ablation)."""
    embed_dim: int = bounded(256, ge=8)
    """Token embedding width (Preference Transformer: 256)."""
    n_layers: int = bounded(1, ge=1)
    """Causal GPT blocks (Preference Transformer: 1 to 3)."""
    n_heads: int = bounded(4, ge=1)
    """Attention heads per block; must divide embed_dim."""
    dropout: float = bounded(0.1, ge=0.0, lt=1.0)
    attention_dim: int = bounded(256, ge=1)
    """d of the preference-attention head's queries and keys (Preference Transformer: 256)."""
    mlp_hidden: tuple[int, ...] = (512, 512, 512)
    """Hidden widths of the MLP variant (about the transformer's parameter count at the defaults)."""
    window: int = bounded(100, ge=2)
    """Steps per training segment and per scoring window (whole trajectories are scored by tiling)."""
    batch_size: int = bounded(64, ge=2)
    """Trajectories per step and worker, half safe demonstrations, half unlabelled (balanced)."""
    steps: int = bounded(10_000, ge=1)
    learning_rate: float = bounded(3e-5, gt=0)
    """Table 4: 3e-5."""
    weight_decay: float = bounded(1e-4, ge=0)
    warmup_steps: int = bounded(500, ge=0)
    """Linear warm-up, then cosine decay to 0 (Preference Transformer's schedule)."""
    return_agnostic: bool = True
    """Add the vCLUB bound between signal and return (False: the 'w/o return-agnostic' ablation)."""
    vclub_coef: float = bounded(0.1, ge=0)
    """Table 4: coefficient of the vCLUB bound in the discriminator loss."""
    vclub_samples: Literal["data", "unlabelled", "batch"] = "data"
    """Which samples q(r | z) is fitted on and the vCLUB bound is estimated on. ``data``: an extra
    batch drawn uniformly from all the learner's trajectories each step (the data's p(z, r), as in
    paper eq. 4), signals computed with gradient; ``unlabelled``: the same from the unlabelled
    trajectories only; ``batch``: the balanced demonstration/unlabelled batch of the BCE loss (the
    behaviour before issue 12). On the balanced batch the demonstration label nearly fixes the
    return bin (demonstrations are the highest-return safe trajectories), so lowering MI(z; r)
    there lowers exactly the separation the discriminator is trained for. ``data``/``unlabelled``
    cost one more forward/backward pass per step (quick profile: ~2x stage-1 CPU time). Measured
    (benchmarks/results/stage1_options.md): on data where safety and return are independent it
    removes the return from the signal and recovers safety (tests/test_return_agnostic.py); on the
    shipped datasets, where unsafe trajectories are the high-return ones, coefficient 0.1 changes
    AUROC little and 1.0 lowers it."""
    vclub_batch_size: int | None = bounded(None, ge=2)
    """Trajectories in the extra vCLUB batch (``data``/``unlabelled``); None: ``batch_size``."""
    return_bins: int = bounded(10, ge=2)
    """Appendix D: the return is discretised into K = 10 bins for q(r | z)."""
    return_binning: Literal["uniform", "quantile"] = "uniform"
    """Equal-width bins over the returns' range, or equal-count bins."""
    estimator_steps: int = bounded(5, ge=1)
    """Maximum-likelihood steps of q(r | z) per discriminator step (public CLUB example: several)."""
    estimator_hidden: int = bounded(64, ge=1)
    estimator_learning_rate: float = bounded(1e-3, gt=0)
    pu_loss: Literal["bce", "nnpu"] = "bce"
    """``bce``: paper eq. 1 (demonstrations positive, unlabelled negative). ``nnpu``: the
    non-negative positive-unlabelled risk (Kiryo et al. 2017), in its class-balanced form so that
    0.5 stays the decision threshold: 0.5 R_p^+ + 0.5 max(0, (R_u^- - pi R_p^-) / (1 - pi)), logistic
    loss; when the negative-class risk estimate goes below 0 the step ascends it (gamma = 1). The
    unlabelled safe trajectories are then not pushed towards 'unsafe' once the negative risk is
    spent. Assumes the demonstrations look like the unlabelled safe trajectories (SCAR)."""
    pu_prior: float | None = bounded(None, gt=0, lt=1)
    """pi, the fraction of safe trajectories among the unlabelled ones, for ``nnpu``. None: estimated
    from the learner's data only (no costs): Elkan & Noto's e1 estimator, 2-fold cross-fitted
    logistic regression of demonstrations vs unlabelled on per-trajectory feature means and
    standard deviations (see :func:`estimate_class_prior`)."""
    demo_noise: float = bounded(0.0, ge=0)
    """Demonstration augmentation: Gaussian noise of this many per-dimension standard deviations
    (of the whole data) added to the states and actions of demonstration windows in training."""
    score_reduction: Literal["mean", "min_window"] = "mean"
    """How :func:`score_trajectories` turns the tiling windows' z_t into z_tau: ``mean`` of z_t
    over every step (the paper's formula when windows tile the trajectory), or the smallest
    window mean (a trajectory is as safe as its least safe stretch)."""
    negatives: Literal["uniform", "return_matched"] = "uniform"
    """Which unlabelled trajectories fill the negative half of each BCE batch. ``uniform``: all of
    them alike (paper eq. 1). ``return_matched``: drawn with probability proportional to a
    Gaussian kernel density of the demonstrations' returns at their return (bandwidth
    ``return_match_bandwidth`` x the std of all returns), so that in every batch the negatives
    earn what the demonstrations earn and the return no longer tells the two apart: the classifier
    has to find what else differs (the behaviour that costs). The demonstrations are the
    highest-return safe trajectories, so without matching "has a demonstration's return" is the
    easiest cue, and it ranks the low-return safe trajectories as unsafe. Reads returns and the
    demonstration flags only (never costs)."""
    return_match_bandwidth: float = bounded(0.1, gt=0)
    """Kernel bandwidth of ``negatives="return_matched"``, in standard deviations of all returns."""
    score_window: int | None = bounded(None, ge=1)
    """Steps per scoring window of ``score_reduction="min_window"`` (None: ``window``). Shorter
    windows find shorter unsafe stretches; the mean reduction does not depend on it."""
    gradient_penalty: float = bounded(0.0, ge=0)
    """Coefficient of (|grad|-1)^2 at interpolated inputs ('w/ gp' ablation of Table 2); 0: off."""
    signal_rerank: Literal["none", "within_return", "within_return_if_rising"] = "none"
    """What the labels stage does with the trained discriminator's signals
    (:func:`~dspo_ray.dspo.discriminator.rerank_signals`). ``none``: the signal as scored (the
    paper). ``within_return``: each trajectory's signal replaced by its percentile among the
    unlabelled trajectories of near-equal return (a Gaussian kernel 0.1 std of the returns wide),
    from signals and returns alone: return-agnostic by construction (correlation with the return
    near 0), which the vCLUB term does not achieve on our data. ``within_return_if_rising``: only
    when the signal rises with the return over the unlabelled trajectories, the direction in which
    top-return demonstrations bias it. Measured offline on the Table 2 runs (docs/results/stage1.md,
    "Right about safety, confounded by the return"): ``within_return`` lifts the AUROC where the
    signal followed the return (AntRun MLP + matched 0.55 -> 0.65) and lowers it where its
    differences between returns were informative (hardsparse 0.97 -> 0.81). Only the labels stage
    reads it: changing it reuses a trained discriminator (stage cache)."""
    label_threshold: float = bounded(0.5, gt=0, lt=1)
    """Signal above which a trajectory counts as safe in the metrics (balanced training: 0.5)."""
    grad_clip: float = bounded(1.0, gt=0)
    log_every: int = bounded(100, ge=1)
    checkpoint_every: int = bounded(1000, ge=1)


@dataclass(frozen=True)
class DiffusionConfig:
    """Stage 2: the conditional trajectory diffusion model (paper section 3.2, Table 4)."""

    horizon: int = bounded(32, ge=4)
    """Steps per generated window of (state, action); must be divisible by 2^(len(dim_mults)-1)."""
    n_diffusion_steps: int = bounded(100, ge=2)
    """Table 4: 100 denoising steps."""
    dim: int = bounded(64, ge=8)
    """Table 4: embedding dimension of the U-Net backbone."""
    dim_mults: tuple[int, ...] = (1, 2, 4, 8)
    """Channel multipliers per U-Net level (trajectory diffusion planners)."""
    attention: bool = True
    """Linear attention at the U-Net's bottleneck."""
    attention_dim: int = bounded(128, ge=8)
    """Table 4: hidden dimension of the attention layer (heads x head width)."""
    condition_dropout: float = bounded(0.25, ge=0, le=1)
    """Probability of replacing (return, signal) by the learned null condition (joint mask)."""
    guidance_weight: float = bounded(2.0, ge=0)
    """eps = eps_null + w (eps_cond - eps_null); 1 is plain conditional sampling."""
    batch_size: int = bounded(64, ge=1)
    """Table 4: 64 windows per step and worker."""
    steps: int = bounded(200_000, ge=1)
    """Table 4: 200k iterations."""
    learning_rate: float = bounded(3e-4, gt=0)
    """Table 4: 3e-4."""
    loss: Literal["l1", "l2"] = "l1"
    """Table 4: L1 loss (on the network's target, see ``prediction``)."""
    prediction: Literal["epsilon", "x0", "v"] = "epsilon"
    """What the U-Net predicts: the noise (DDPM, appendix B), the clean window (the trajectory
    diffusion planners' choice for locomotion) or the velocity sqrt(ab) eps - sqrt(1 - ab) x0
    (Salimans & Ho 2022), which is minus the clean window at high noise and the noise at low
    noise. At the quick profile's budget only x0 keeps the windows near the dynamics, and with
    the L1 loss it collapses them on MetaDrive (docs/results/stage2_variants/v_prediction.md)."""
    first_state_given: bool = False
    """False (the paper): the model generates whole windows. True: it is trained to continue a
    window from its given first state (Diffuser's conditioning on the current state: the first
    state is left clean in the noised window and out of the loss), and generation says where each
    window starts (``generation.anchor``, which then must not be ``none``)."""
    ema_start: int = bounded(1000, ge=0)
    """Table 4: EMA updates start at iteration 1000 (the EMA is a copy before that)."""
    ema_decay: float = bounded(0.995, ge=0, le=1)
    ema_every: int = bounded(5, ge=1)
    grad_clip: float = bounded(1.0, gt=0)
    log_every: int = bounded(500, ge=1)
    checkpoint_every: int = bounded(5000, ge=1)
    autocast: Literal["off", "bf16"] = "off"
    """The U-Net's forward passes (training and sampling) in bfloat16 autocast; the diffusion
    arithmetic around them stays fp32. CUDA only: on a CPU it is a no-op with one line on stderr
    (fp32 is the reference there; on our 2-core CPU bf16 autocast trains the paper-profile
    denoiser only 1.05-1.2x faster, benchmarks/results/denoiser_cpu.md; bf16's effect on a GPU's
    samples is not yet measured).
    Channels-last is not offered: the denoiser is Conv1d over (batch, channels, horizon) tensors,
    and torch's channels-last format is 4-D only."""
    compile: bool = False
    """``torch.compile`` the U-Net in place (state_dict keys unchanged). CUDA only, as ``autocast``."""


@dataclass(frozen=True)
class GenerationConfig:
    """Generation of the data set D^G (appendix D)."""

    n_windows: int = bounded(2000, ge=1)
    """Windows of `horizon` steps to generate."""
    return_condition: float | None = bounded(None, ge=-1.0, le=2.0)
    """None: returns drawn uniformly from the safe demonstrations' return range (appendix D).
    A number q: the fixed return r_min + q (r_max - r_min) of that range (1 = the best demo,
    > 1 extrapolates)."""
    safety_condition: float | None = bounded(None, ge=0.0, le=1.0)
    """None: the ``safety_condition_quantile`` quantile of the signals given to the safe
    demonstrations (by default their smallest, appendix D); or this signal."""
    safety_condition_quantile: float = bounded(0.0, ge=0.0, le=1.0)
    """With ``safety_condition`` None: which quantile of the demonstrations' signals conditions
    generation. 0 is appendix D's smallest signal, "as diverse as possible under the condition of
    being safe"; with a signal whose demonstration minimum sits among the unsafe trajectories'
    signals (DroneRun, MLP with matched negatives: 0.34, while 5% of unlabelled score above 0.57),
    that lets unsafe windows in, and 0.5 (the median) conditions on what most demonstrations look
    like (docs/results/stage1.md, the conditioning diagnostic). Learner's data only."""
    batch_size: int = bounded(500, ge=1)
    """Windows denoised at once."""
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    """``ddpm``: ancestral sampling over all ``diffusion.n_diffusion_steps`` (the paper, appendix
    B). ``ddim`` (Song et al. 2021): ``sampling_steps`` evenly spaced steps, noise scale ``eta``;
    the speed/quality trade is measured in benchmarks/results/sampler.md (speed, windows) and
    docs/results/sampler_policy (the final policy, 4 tasks x 3 seeds)."""
    sampling_steps: int | None = bounded(None, ge=1)
    """Denoising steps of ``ddim`` (None: all ``diffusion.n_diffusion_steps``); ``ddpm`` refuses
    any other count than all of them."""
    eta: float = bounded(0.0, ge=0, le=1)
    """``ddim``'s noise scale: 0 deterministic given the initial noise; 1 with all steps is DDPM."""
    signal_filter_quantile: float | None = bounded(None, ge=0.0, le=1.0)
    """None (the paper): every generated window goes to behaviour cloning. A quantile q: only
    generated windows whose stage-1 signal (the discriminator's score of the window) reaches the
    q-quantile of the signals of the safe demonstrations' own windows of the same length; more
    windows are drawn until ``n_windows`` pass or ``filter_max_draws`` x ``n_windows`` were drawn.
    Label-free (the learner's discriminator and demonstrations); needs a discriminator, so not
    with ``stage1_oracle``. Measured at the quick profile, it makes DSPO costlier, not safer: the
    discriminator rates windows no simulator could produce above the demonstrations' own
    (docs/results/stage2_variants/filter.md, dynamics.md)."""
    filter_max_draws: int = bounded(4, ge=1)
    """With ``signal_filter_quantile``: at most this many rounds of ``n_windows`` draws."""
    anchor: Literal["none", "demonstrations", "unlabelled"] = "none"
    """Where each window starts. ``none`` (the paper): the whole window is generated.
    ``demonstrations`` / ``unlabelled``: its first state is a state drawn uniformly from the
    learner's safe demonstrations / unlabelled trajectories, given to a model trained to continue
    from it (``diffusion.first_state_given``, required), so every window starts where the
    simulator has been and the generator says what a safe, high-return agent does from there.
    Label-free. Why: the free windows are collapsed or physically impossible at the quick profile
    (docs/results/stage2_variants/dynamics.md). Measured on CarCircle and DroneRun, it does not
    help (docs/results/stage2_variants/anchor.md). Why a trained model: merely writing the state
    over the first step of a model trained on free windows hardly steers the rest of the window
    (seen on the two-mode toy of tests/test_dspo_diffusion.py while building this)."""
    consistency: Literal["none", "dynamics_rollout", "inverse_dynamics"] = "none"
    """``none`` (the paper): behaviour cloning sees the generated windows as generated.
    ``dynamics_rollout``: windows consistent by construction. A one-step dynamics model
    (dspo_ray/dspo/dynamics.py) is fitted on the learner's trajectories, demonstrations and
    unlabelled, no cost in them. Each window keeps its first state and its generated actions; its
    later states are the model's, step after step from the first, kept within the data's state
    range. Why: at the quick profile the generated states do not follow from the previous state
    and action (1.6-21x the real windows' one-step error, docs/results/stage2_variants/dynamics.md),
    so behaviour cloning learns actions at states no policy reaches; rolled out, each generated
    action is paired with the state the model says it leads to. ``inverse_dynamics``: the other
    way round, the generated states are kept and each step's action is replaced by the one an
    inverse dynamics model (s, s') -> a, fitted on the same trajectories, says leads to the next
    generated state; each window loses its last step (no next state). As Decision Diffuser (Ajay
    et al. 2023) takes its actions. Label-free. Measured at the quick profile on the four shipped
    tasks where DSPO is unsafe (docs/results/stage2_variants/consistency.md): the rolled-out
    windows follow the dynamics and lower DroneRun's cost on all 5 seeds (7.59 -> 3.10) but raise
    CarCircle's (1.32 -> 3.09); inferred actions help on none; no setting makes DSPO safe."""
    dynamics_steps: int = bounded(4000, ge=1)
    """With ``consistency`` not ``none``: the dynamics model's training steps (batches of 256
    transitions)."""


@dataclass(frozen=True)
class BCConfig:
    """The final policy: MLP behaviour cloning on safe demonstrations + generated data."""

    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = bounded(64, ge=1)
    """Table 4: 64."""
    steps: int = bounded(100_000, ge=1)
    learning_rate: float = bounded(1e-3, gt=0)
    weight_decay: float = bounded(0.0, ge=0)
    log_every: int = bounded(1000, ge=1)
    checkpoint_every: int = bounded(10_000, ge=1)


@dataclass(frozen=True)
class DSPOConfig:
    task: str = "CarCircle"
    seed: int = bounded(0, ge=0)
    profile: Literal["paper", "quick"] = "paper"
    """Which defaults the file's settings override (informational once loaded)."""
    dataset: str | None = None
    """A DSRL file or folder; None: $DSRL_DATASET_DIR, then the shipped datasets."""
    split: SplitConfig = field(default_factory=SplitConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    bc: BCConfig = field(default_factory=BCConfig)
    eval_episodes: int = bounded(20, ge=1)
    """Table 1: 20 evaluation episodes."""
    eval_workers: int | None = bounded(None, ge=1)
    """Processes for evaluation, this one included; None: the available CPUs where that pays
    (``dspo_ray.evaluation.evaluate``). Results do not depend on it."""
    holdout_demos: int = bounded(3, ge=0)
    """Safe demonstrations held out of stage-1 (discriminator) training only, for the label-free
    selection metrics ``stage1/heldout_demo_auroc(_return_matched)``: how highly they rank among
    the unlabelled trajectories (that earn at least as much; the sweeps select on that one). Drawn with ``split.seed``, so every run on the same split (every seed and
    configuration of a sweep's cell) holds out the same demonstrations and their metrics compare;
    the diffusion model, generation and BC use every demonstration. 0: train stage 1 on all of
    them (the metric is then NaN)."""
    stage1_oracle: bool = False
    """Diagnostic only (never Table 1): replace the learned safety signal by the hidden truth
    (1 safe, 0 unsafe; demonstrations 1) and run the rest of DSPO unchanged; no discriminator is
    trained. The run is marked ``diagnostic/oracle_signal: 1``."""
    stage2_oracle: bool = False
    """Diagnostic only (never Table 1): replace the generated windows by ``generation.n_windows``
    real windows of ``diffusion.horizon`` steps cut at random from the unlabelled trajectories the
    hidden truth says are safe, and clone them with the demonstrations as DSPO does its generated
    ones. An upper bound on what a perfect stage 2 (a generator of safe windows the simulator could
    have produced) can give behaviour cloning. Stage 1 still trains and reports its metrics;
    nothing downstream reads its signal, and no diffusion model is trained. The run is marked
    ``diagnostic/oracle_windows: 1``. Measured at the quick profile on four tasks, the real safe
    windows cut DSPO's reward everywhere and leave it unsafe on three: the demonstrations being
    the highest-return safe trajectories, the safe windows it adds earn less
    (docs/results/stage2_variants/oracle_windows.md)."""
    stop_after: StopAfter | None = None
    """Stop after this stage (no simulator evaluation), e.g. ``labels`` for a stage-1-only run
    (Table 2): the run reports its metrics so far and ``run/stopped_after_stage`` (1-5). None:
    run everything."""

    def __post_init__(self):
        from dspo_ray.tasks import get_task

        get_task(self.task)  # unknown task -> error listing the valid ones
        d = self.discriminator
        if d.embed_dim % d.n_heads:
            raise ConfigError(f"discriminator.n_heads: {d.n_heads} does not divide "
                              f"discriminator.embed_dim {d.embed_dim}")
        m = self.diffusion
        if m.horizon % 2 ** (len(m.dim_mults) - 1):
            raise ConfigError(f"diffusion.horizon: {m.horizon} is not divisible by "
                              f"2^(len(diffusion.dim_mults)-1) = {2 ** (len(m.dim_mults) - 1)}")
        g = self.generation
        if m.first_state_given != (g.anchor != "none"):
            raise ConfigError("generation.anchor: a model trained with diffusion.first_state_given "
                              "needs an anchor ('demonstrations' or 'unlabelled'), and an anchor "
                              "needs such a model; set both or neither")
        if g.sampling_steps is not None and g.sampling_steps > m.n_diffusion_steps:
            raise ConfigError(f"generation.sampling_steps: {g.sampling_steps} is more than "
                              f"diffusion.n_diffusion_steps {m.n_diffusion_steps}")
        if g.sampler == "ddpm" and g.sampling_steps not in (None, m.n_diffusion_steps):
            raise ConfigError(f"generation.sampling_steps: {g.sampling_steps} needs "
                              "generation.sampler 'ddim' (ddpm visits all n_diffusion_steps)")
        if self.stage2_oracle and (g.signal_filter_quantile is not None
                                   or g.consistency != "none" or g.anchor != "none"):
            raise ConfigError("stage2_oracle: its windows are real, with nothing to filter, make "
                              "consistent or anchor, and no diffusion model is trained; unset "
                              "generation.signal_filter_quantile, generation.consistency and "
                              "generation.anchor")
        if g.signal_filter_quantile is not None and self.stage1_oracle:
            raise ConfigError("generation.signal_filter_quantile: needs the discriminator's signal, "
                              "and stage1_oracle trains none; set one of them only")
        if g.sampler == "ddpm" and g.eta != 0:
            raise ConfigError("generation.eta: applies to sampler 'ddim' only (ddpm is eta 1)")


# The quick profile: a 2-core CPU, 300-step episodes, 15 demos + 500 unlabelled, <10 minutes.
_QUICK: dict[str, Any] = {
    "profile": "quick",
    "discriminator": dict(embed_dim=64, n_heads=2, attention_dim=64, mlp_hidden=[128, 128, 128],
                          window=50, batch_size=32, steps=400, learning_rate=3e-4,
                          warmup_steps=40, log_every=50, checkpoint_every=200,
                          # issue 12: the paper's uniform negatives reach AUROC 0.77 on MetaDrive
                          # hardsparse, return-matched ones 0.97 (docs/results/stage1.md)
                          negatives="return_matched"),
    "diffusion": dict(horizon=16, dim=32, dim_mults=[1, 2, 4], attention=False, batch_size=64,
                      # x0: at 2,500 steps v's and epsilon's windows are 10-600x off the dynamics
                      # and DSPO costlier with them (docs/results/stage2_variants/v_prediction.md)
                      prediction="x0",
                      steps=2500, learning_rate=1e-3, ema_start=500, log_every=250,
                      checkpoint_every=1000),
    "generation": dict(n_windows=500, batch_size=500),
    "bc": dict(steps=4000, batch_size=64, log_every=500, checkpoint_every=2000),
}

PROFILES: dict[str, dict[str, Any]] = {"paper": {"profile": "paper"}, "quick": _QUICK}


def profile_config(name: str, **overrides: Any) -> DSPOConfig:
    """The named profile's config, with dotted-key overrides (``seed=1``,
    ``**{"discriminator.vclub_coef": 0.2}``)."""
    return load_dspo_config({"profile": name, **unflatten(overrides)})


def load_dspo_config(source: str | Path | Mapping[str, Any] | None = None,
                     **overrides: Any) -> DSPOConfig:
    """A DSPOConfig from a YAML file or mapping: its ``profile`` (default ``paper``) supplies the
    defaults, its other keys (then ``overrides``, dotted keys allowed) go on top. Validated."""
    data = load_yaml(source) if isinstance(source, (str, Path)) else dict(source or {})
    data = deep_merge(data, unflatten(overrides))
    name = data.get("profile", "paper")
    if name not in PROFILES:
        raise ConfigError(f"profile: unknown profile {name!r}; valid profiles are: {', '.join(PROFILES)}")
    return from_dict(DSPOConfig, deep_merge(PROFILES[name], data))


def config_dict(config: DSPOConfig) -> dict[str, Any]:
    return to_dict(config)
