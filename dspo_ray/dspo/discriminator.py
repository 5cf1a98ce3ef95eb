"""Stage 1: train the trajectory-wise safety discriminator, label every trajectory, score the labels.

Loss (paper eq. 1 + eq. 4): binary cross-entropy with the safe demonstrations as positives and the
unlabelled trajectories as negatives, in balanced batches (15 demonstrations against hundreds of
unlabelled trajectories), plus ``vclub_coef`` x the vCLUB bound between the signal z_tau and the
trajectory return discretised into K bins. The K-class predictor q(r | z) is trained by maximum
likelihood on matched pairs, ``estimator_steps`` times per discriminator step on that step's
(detached) signals, and is frozen in the discriminator's step (public CLUB example).

Which signals the bound and q(r | z) see (``vclub_samples``, issue 12): by default an extra batch
drawn uniformly from the learner's trajectories (the data's p(z, r), which eq. 4's expectations
are over), not the balanced batch of the BCE loss. In the balanced batch half the samples are
demonstrations, chosen as the highest-return safe trajectories, so the demonstration label nearly
fixes the return bin there; lowering MI(z; r) on that batch lowers exactly the demo/unlabelled
separation (measured: coefficient 1.0 drove every signal to ~0.51). On the data distribution,
where demonstrations are ~3% of the samples, the term asks instead that the signal not rank the
unlabelled trajectories by their return.

Options beyond the paper (each a config value, paper behaviour by default): the class-balanced
non-negative PU risk (``pu_loss="nnpu"``) with a class prior estimated from the learner's data
(:func:`estimate_class_prior`), demonstration noise (``demo_noise``), and the least-safe-window
scoring (``score_reduction="min_window"``). benchmarks/results/stage1_options.md measures them.

Ablations (config): ``variant="mlp"`` (Figure 4), ``return_agnostic=False`` (Table 2 "w/o
return-agnostic"), plus ``gradient_penalty > 0`` (Table 2 "w/ gp").

Training reads only the learner's data (states, actions, rewards; which trajectories are the
demonstrations). :func:`discriminator_metrics` is the one place that reads the hidden truth.
"""

from __future__ import annotations

import math
import typing
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from dspo_ray.data import HiddenTruth
from dspo_ray.dspo.config import DiscriminatorConfig
from dspo_ray.dspo.safety_transformer import (ReturnClassifier, build_discriminator,
                                              vclub_bound)
from dspo_ray.dspo.windows import (RaggedTrajectories, WindowBatch, cut_windows, random_windows,
                                   tiling_windows)
from dspo_ray.training import TrainContext, run_steps, unwrap


def return_bins(returns: np.ndarray, n_bins: int, binning: str = "uniform") -> np.ndarray:
    """The bin (0..K-1) of each return: equal-width over the returns' range, or equal-count."""
    returns = np.asarray(returns, dtype=np.float64)
    if binning == "uniform":
        edges = np.linspace(returns.min(), returns.max(), n_bins + 1)
    elif binning == "quantile":
        edges = np.quantile(returns, np.linspace(0, 1, n_bins + 1))
    else:
        raise ValueError(f"return_binning must be 'uniform' or 'quantile', got {binning!r}")
    return np.clip(np.searchsorted(edges[1:-1], returns, side="right"), 0, n_bins - 1)


def make_discriminator(config: DiscriminatorConfig, obs_dim: int, act_dim: int,
                       max_timestep: int) -> nn.Module:
    if config.variant == "safety_transformer":
        kwargs = dict(embed_dim=config.embed_dim, n_layers=config.n_layers, n_heads=config.n_heads,
                      dropout=config.dropout, attention_dim=config.attention_dim)
    else:
        kwargs = dict(hidden=config.mlp_hidden, dropout=config.dropout)
    return build_discriminator(config.variant, obs_dim, act_dim, max_timestep, **kwargs)


def load_discriminator(artefact: dict) -> nn.Module:
    """The trained discriminator from train_discriminator's return value (or its saved file)."""
    model = build_discriminator(artefact["variant"], **artefact["model_config"])
    model.load_state_dict(artefact["state_dict"])
    # how score_trajectories scores unless told otherwise (artefacts before: the mean over the
    # training window's tiling)
    config = artefact.get("config", {})
    model.score_reduction = config.get("score_reduction", "mean")
    model.score_window = config.get("score_window") or config.get("window")
    return model.eval()


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _to_device(batch: WindowBatch, device) -> tuple[torch.Tensor, ...]:
    return (torch.as_tensor(batch.observations, device=device),
            torch.as_tensor(batch.actions, device=device),
            torch.as_tensor(batch.timesteps, device=device),
            torch.as_tensor(batch.mask, device=device))


def gradient_penalty(model: nn.Module, demo: tuple[torch.Tensor, ...],
                     other: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
    """(|grad_input logit| - 1)^2 at random interpolations of demonstration and unlabelled windows
    (DWBC's penalty), over the steps real in both."""
    n = min(len(demo[0]), len(other[0]))
    alpha = torch.rand(n, 1, 1, generator=generator).to(demo[0].device)
    obs = (alpha * demo[0][:n] + (1 - alpha) * other[0][:n]).requires_grad_(True)
    act = (alpha * demo[1][:n] + (1 - alpha) * other[1][:n]).requires_grad_(True)
    mask = demo[3][:n] & other[3][:n]
    logits = model(obs, act, demo[2][:n], mask)
    grads = torch.autograd.grad(logits.sum(), [obs, act], create_graph=True)
    norm = torch.cat([g.flatten(1) for g in grads], 1).norm(dim=1)
    return ((norm - 1) ** 2).mean()


def nnpu_risk(logits: torch.Tensor, labels: torch.Tensor, prior: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The class-balanced non-negative PU risk (Kiryo et al. 2017, logistic loss) of a batch whose
    positives (label 1) are demonstrations and negatives (label 0) unlabelled trajectories, with
    ``prior`` the safe fraction among the unlabelled. Returns (objective to minimise, the estimate
    of the negative-class risk): 0.5 R_p^+ + 0.5 R_n^- with R_n^- = (R_u^- - pi R_p^-) / (1 - pi);
    when R_n^- < 0 (overfitting the unlabelled), the objective is -R_n^- (a step that ascends it)."""
    pos = labels > 0.5
    risk_p_plus = F.softplus(-logits[pos]).mean()
    risk_p_minus = F.softplus(logits[pos]).mean()
    risk_u_minus = F.softplus(logits[~pos]).mean()
    risk_n_minus = (risk_u_minus - prior * risk_p_minus) / (1 - prior)
    if risk_n_minus.item() < 0:
        return -risk_n_minus, risk_n_minus
    return 0.5 * risk_p_plus + 0.5 * risk_n_minus, risk_n_minus


def update_step(model, estimator, optimizer, estimator_optimizer, batch, labels, bins,
                config: DiscriminatorConfig, generator: torch.Generator,
                data_batch: tuple[torch.Tensor, ...] | None = None,
                data_bins: torch.Tensor | None = None,
                pu_prior: float | None = None) -> dict[str, float]:
    """One discriminator step (after ``estimator_steps`` steps of q). Returns logged numbers.

    ``data_batch``/``data_bins``: the separately drawn windows (and their return bins) the vCLUB
    term is estimated on when ``config.vclub_samples`` is ``data`` or ``unlabelled``; with
    ``batch`` it uses ``batch``/``bins``. ``pu_prior``: the class prior for ``pu_loss="nnpu"``
    (None: ``config.pu_prior``)."""
    obs, act, steps, mask = batch
    logits = model(obs, act, steps, mask)
    bce = F.binary_cross_entropy_with_logits(logits, labels)
    out = {"losses/discriminator": bce.item()}
    if config.pu_loss == "nnpu":
        prior = config.pu_prior if pu_prior is None else pu_prior
        if prior is None:
            raise ValueError("pu_loss='nnpu' needs a class prior (config.pu_prior or pu_prior=)")
        loss, risk_n = nnpu_risk(logits, labels, prior)
        out.update({"losses/nnpu": loss.item(), "losses/nnpu_negative_risk": risk_n.item()})
    else:
        loss = bce
    signal = torch.sigmoid(logits)
    if config.return_agnostic and config.vclub_coef > 0:
        if config.vclub_samples == "batch":
            ra_signal, ra_bins = signal, bins
        else:
            if data_batch is None or data_bins is None:
                raise ValueError(f"vclub_samples={config.vclub_samples!r} needs data_batch and "
                                 "data_bins (or set vclub_samples='batch')")
            ra_signal, ra_bins = torch.sigmoid(model(*data_batch)), data_bins
        for _ in range(config.estimator_steps):  # q(r | z) by maximum likelihood, z fixed
            estimator_optimizer.zero_grad(set_to_none=True)
            nll = F.nll_loss(estimator(ra_signal.detach()), ra_bins)
            nll.backward()
            estimator_optimizer.step()
        # q is frozen in the discriminator's step: detached weights, so no gradient reaches it
        plain_q = unwrap(estimator)
        frozen = {k: v.detach() for k, v in plain_q.named_parameters()}
        bound = vclub_bound(functional_call(plain_q, frozen, (ra_signal,)), ra_bins)
        loss = loss + config.vclub_coef * bound
        out.update({"losses/vclub": bound.item(), "losses/estimator_nll": nll.item()})
    if config.gradient_penalty > 0:
        is_demo = labels > 0.5
        demo = tuple(t[is_demo] for t in batch)
        other = tuple(t[~is_demo] for t in batch)
        gp = gradient_penalty(unwrap(model), demo, other, generator)
        loss = loss + config.gradient_penalty * gp
        out["losses/gradient_penalty"] = gp.item()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    with torch.no_grad():
        pos = labels > 0.5
        out.update({
            "losses/total": loss.item(),
            "train/batch_accuracy": ((signal > 0.5) == pos).float().mean().item(),
            "train/signal_demos": signal[pos].mean().item(),
            "train/signal_unlabelled": signal[~pos].mean().item(),
        })
    return out


def trajectory_features(trajectories: RaggedTrajectories) -> np.ndarray:
    """Per-trajectory mean and standard deviation of every (standardised) state and action
    dimension, and the log length: a cheap fixed-size summary for :func:`estimate_class_prior`."""
    rows = np.concatenate([trajectories.observations, trajectories.actions], 1).astype(np.float64)
    rows = (rows - rows.mean(0)) / np.maximum(rows.std(0), 1e-3)
    starts, lengths = trajectories.starts, trajectories.lengths
    mean = np.add.reduceat(rows, starts, axis=0) / lengths[:, None]
    sq = np.add.reduceat(rows ** 2, starts, axis=0) / lengths[:, None]
    std = np.sqrt(np.maximum(sq - mean ** 2, 0))
    return np.concatenate([mean, std, np.log(lengths)[:, None]], 1)


def estimate_class_prior(trajectories: RaggedTrajectories, seed: int = 0, folds: int = 2,
                         c: float = 1.0, bounds: tuple[float, float] = (0.02, 0.5)) -> float:
    """The fraction of safe trajectories among the unlabelled ones, from the learner's data only
    (which trajectories are demonstrations; never costs): Elkan & Noto (2008)'s e1 estimator.

    A class-balanced logistic regression g separates demonstrations from unlabelled trajectories
    on :func:`trajectory_features`; for a demonstration x held out of g's fit,
    (1 - g(x)) / g(x) estimates p_U(x) / p_S(x) = pi + (1 - pi) p_N(x) / p_S(x) >= pi, so its mean
    over held-out demonstrations estimates pi (exactly when safe and unsafe do not overlap, an
    over-estimate otherwise). Cross-fitted over ``folds`` folds; clipped to ``bounds``."""
    from sklearn.linear_model import LogisticRegression

    x = trajectory_features(trajectories)
    is_demo = np.asarray(trajectories.is_demo)
    rng = np.random.default_rng(seed)
    fold = np.empty(len(x), np.int64)
    for group in (np.flatnonzero(is_demo), np.flatnonzero(~is_demo)):
        fold[group] = rng.permutation(len(group)) % folds
    ratios = []
    for k in range(folds):
        fit = fold != k
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000)
        clf.fit(x[fit], is_demo[fit])
        held = (fold == k) & is_demo
        g = np.clip(clf.predict_proba(x[held])[:, 1], 1e-6, 1 - 1e-6)
        ratios.append((1 - g) / g)
    return float(np.clip(np.mean(np.concatenate(ratios)), *bounds))


def negative_sampling_weights(returns: np.ndarray, is_demo: np.ndarray, negatives: str,
                              bandwidth: float = 0.1) -> np.ndarray:
    """The probability of drawing each unlabelled trajectory (in index order of ``~is_demo``) as a
    negative of the BCE batch: uniform, or (``return_matched``) proportional to the Gaussian
    kernel density of the demonstrations' returns at its return, with ``bandwidth`` x the std of
    all returns. A floor of 1e-3 x the uniform probability keeps every trajectory drawable."""
    returns, is_demo = np.asarray(returns, dtype=np.float64), np.asarray(is_demo, dtype=bool)
    n = int((~is_demo).sum())
    if negatives == "uniform":
        return np.full(n, 1.0 / n)
    if negatives != "return_matched":
        raise ValueError(f"negatives must be 'uniform' or 'return_matched', got {negatives!r}")
    h = bandwidth * max(float(returns.std()), 1e-8)
    z = (returns[~is_demo][:, None] - returns[is_demo][None, :]) / h
    density = np.exp(-0.5 * z ** 2).sum(1)
    p = density / density.sum() if density.sum() > 0 else np.full(n, 1.0 / n)
    p = p + 1e-3 / n
    return p / p.sum()


def _add_demo_noise(batch: WindowBatch, is_demo: np.ndarray, scale: float, obs_std: np.ndarray,
                    act_std: np.ndarray, rng: np.random.Generator) -> WindowBatch:
    """Demonstration windows with Gaussian noise of ``scale`` per-dimension standard deviations
    (padding stays zero)."""
    obs, act = batch.observations.copy(), batch.actions.copy()
    m = batch.mask[is_demo][..., None]
    obs[is_demo] += (scale * obs_std * rng.standard_normal(obs[is_demo].shape) * m).astype(np.float32)
    act[is_demo] += (scale * act_std * rng.standard_normal(act[is_demo].shape) * m).astype(np.float32)
    return WindowBatch(obs, act, batch.timesteps, batch.mask)


def train_discriminator(ctx: TrainContext, trajectories: RaggedTrajectories,
                        config: DiscriminatorConfig, max_timestep: int, seed: int = 0) -> dict | None:
    """Stage trainer (``train_fn(ctx, **kwargs)``): returns, on rank 0, the discriminator artefact
    ``{variant, model_config, state_dict, estimator_state_dict, steps, config}``."""
    obs_dim, act_dim = trajectories.observations.shape[1], trajectories.actions.shape[1]
    torch.manual_seed(seed)  # identical initial weights on every rank
    model = make_discriminator(config, obs_dim, act_dim, max_timestep)
    model.normalizer.set_stats(trajectories.observations, trajectories.actions)
    estimator = ReturnClassifier(config.return_bins, config.estimator_hidden)
    model, estimator = ctx.wrap_model(model), ctx.wrap_model(estimator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: _lr_factor(s, config.warmup_steps, config.steps))
    estimator_optimizer = torch.optim.Adam(estimator.parameters(), lr=config.estimator_learning_rate)

    worker_seed = seed * 1000 + ctx.rank  # each rank draws its own batches
    rng = np.random.default_rng(worker_seed)
    torch.manual_seed(worker_seed)
    generator = torch.Generator().manual_seed(worker_seed)
    bins_all = return_bins(trajectories.returns, config.return_bins, config.return_binning)
    demo_idx = np.flatnonzero(trajectories.is_demo)
    unlabelled_idx = np.flatnonzero(~trajectories.is_demo)
    if len(demo_idx) == 0 or len(unlabelled_idx) == 0:
        raise ValueError("the discriminator needs safe demonstrations and unlabelled trajectories")

    half = config.batch_size // 2
    # None for uniform: keeps rng.choice's random stream (and results) as before the option
    negative_p = None if config.negatives == "uniform" else negative_sampling_weights(
        trajectories.returns, trajectories.is_demo, config.negatives, config.return_match_bandwidth)
    labels = torch.cat([torch.ones(half), torch.zeros(config.batch_size - half)]).to(ctx.device)
    is_demo_row = np.arange(config.batch_size) < half
    data_pool = {"data": np.arange(len(trajectories)),
                 "unlabelled": unlabelled_idx}.get(config.vclub_samples)
    draw_data = config.return_agnostic and config.vclub_coef > 0 and data_pool is not None
    data_size = config.vclub_batch_size or config.batch_size
    obs_std = trajectories.observations.std(0)
    act_std = trajectories.actions.std(0)
    pu_prior = config.pu_prior
    if config.pu_loss == "nnpu" and pu_prior is None:
        pu_prior = estimate_class_prior(trajectories, seed=seed)  # same on every rank
    model.train()

    def step(done: int) -> dict[str, float]:
        idx = np.concatenate([rng.choice(demo_idx, half),
                              rng.choice(unlabelled_idx, config.batch_size - half, p=negative_p)])
        windows = random_windows(trajectories, idx, config.window, rng)
        if config.demo_noise > 0:
            windows = _add_demo_noise(windows, is_demo_row, config.demo_noise, obs_std, act_std, rng)
        batch = _to_device(windows, ctx.device)
        bins = torch.as_tensor(bins_all[idx], device=ctx.device)
        data_batch = data_bins = None
        if draw_data:  # drawn after the balanced batch: 'batch' mode keeps its random stream
            data_idx = rng.choice(data_pool, data_size)
            data_batch = _to_device(random_windows(trajectories, data_idx, config.window, rng),
                                    ctx.device)
            data_bins = torch.as_tensor(bins_all[data_idx], device=ctx.device)
        numbers = update_step(model, estimator, optimizer, estimator_optimizer, batch, labels, bins,
                              config, generator, data_batch, data_bins, pu_prior)
        scheduler.step()
        numbers["train/learning_rate"] = scheduler.get_last_lr()[0]
        if config.pu_loss == "nnpu":
            numbers["train/pu_prior"] = pu_prior
        return numbers

    run_steps(ctx, "discriminator", config.steps, step,
              {"model": unwrap(model), "estimator": unwrap(estimator), "optimizer": optimizer,
               "estimator_optimizer": estimator_optimizer, "scheduler": scheduler},
              rng, config.log_every, config.checkpoint_every)
    if ctx.rank != 0:
        return None
    plain = unwrap(model)
    return {"variant": config.variant, "model_config": dict(plain.config),
            "state_dict": {k: v.detach().cpu() for k, v in plain.state_dict().items()},
            "estimator_state_dict": {k: v.detach().cpu()
                                     for k, v in unwrap(estimator).state_dict().items()},
            "steps": config.steps, "config": asdict(config)}


@torch.no_grad()
def score_trajectories(model: nn.Module, trajectories: RaggedTrajectories,
                       window: int | None = None, batch_size: int = 256,
                       device: torch.device | str = "cpu",
                       reduction: str | None = None) -> np.ndarray:
    """The safety signal z_tau of every trajectory, z_t computed in windows of ``window`` steps
    that tile the trajectory (padding masked): sigmoid of the mean of z_t over all its steps
    (``mean``), or of the smallest window mean of z_t (``min_window``). None: the model's
    ``score_reduction`` and ``score_window`` (set by :func:`load_discriminator` from the
    DiscriminatorConfig), else ``mean``."""
    reduction = reduction or getattr(model, "score_reduction", "mean")
    window = window or getattr(model, "score_window", None)
    if window is None:
        raise ValueError("score_trajectories needs a window (or a model from load_discriminator)")
    if reduction not in ("mean", "min_window"):
        raise ValueError(f"reduction must be 'mean' or 'min_window', got {reduction!r}")
    if len(trajectories) == 0:  # e.g. a generation filter that let no window through
        return np.zeros(0)
    model = model.to(device).eval()
    idx, offsets = tiling_windows(trajectories, window)
    total = np.zeros(len(trajectories))
    count = np.zeros(len(trajectories))
    lowest = np.full(len(trajectories), np.inf)
    for lo in range(0, len(idx), batch_size):
        batch = cut_windows(trajectories, idx[lo:lo + batch_size], offsets[lo:lo + batch_size], window)
        obs, act, steps, mask = _to_device(batch, device)
        z = model.step_values(obs, act, steps, mask)
        z = (z * mask).sum(1).cpu().numpy()
        np.add.at(total, idx[lo:lo + batch_size], z)
        np.add.at(count, idx[lo:lo + batch_size], batch.mask.sum(1))
        np.minimum.at(lowest, idx[lo:lo + batch_size], z / batch.mask.sum(1))
    logit = total / count if reduction == "mean" else lowest
    return 1.0 / (1.0 + np.exp(-logit))


def ranking_metrics(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """(AUROC, average precision) of ``scores`` ranking the ``positive`` items first; NaN for
    both when only one class is present."""
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return math.nan, math.nan
    from sklearn.metrics import average_precision_score, roc_auc_score

    return (float(roc_auc_score(positive, scores)),
            float(average_precision_score(positive, scores)))


EQUAL_RETURN_WIDTH = 0.1
"""Kernel width of :func:`auroc_at_equal_return`, in standard deviations of the returns (the
width of the return-matched negatives' kernel)."""


def _return_kernel(z_a: np.ndarray, z_b: np.ndarray, width: float) -> np.ndarray:
    """Gaussian kernel weights between standardised returns: ``exp(-(a - b)^2 / 2 width^2)``."""
    return np.exp(-0.5 * ((z_a[:, None] - z_b[None, :]) / width) ** 2)


def auroc_at_equal_return(scores: np.ndarray, positive: np.ndarray, returns: np.ndarray,
                          width: float = EQUAL_RETURN_WIDTH) -> float:
    """AUROC over the (positive, negative) pairs of near-equal return: each pair's comparison
    weighted by ``exp(-d^2 / 2 width^2)``, ``d`` their return difference in standard deviations of
    ``returns`` (ties count half). NaN with one class only.

    It asks what a return-agnostic signal is for: which of two trajectories of the same return is
    the safe one. A score that only follows the return, like the negative-return rule, gets about
    0.5 however well it ranks overall; the plain AUROC credits it with how strongly safety and
    return are related in the data."""
    scores, returns = np.asarray(scores, dtype=float), np.asarray(returns, dtype=float)
    positive = np.asarray(positive, dtype=bool)
    if positive.all() or not positive.any():
        return math.nan
    z = (returns - returns.mean()) / (returns.std() or 1.0)
    weight = _return_kernel(z[positive], z[~positive], width)
    pos, neg = scores[positive][:, None], scores[~positive][None, :]
    wins = (pos > neg) + 0.5 * (pos == neg)
    return float((weight * wins).sum() / weight.sum()) if weight.sum() > 0 else math.nan


def rerank_within_return(signals: np.ndarray, returns: np.ndarray, reference: np.ndarray,
                         width: float = EQUAL_RETURN_WIDTH) -> np.ndarray:
    """Each trajectory's signal replaced by its percentile among the ``reference`` trajectories
    (the unlabelled ones) of near-equal return: the kernel-weighted share of them with a lower
    signal (ties half), the kernel ``exp(-d^2 / 2 width^2)`` on the return gap ``d`` in standard
    deviations of the reference's returns. From signals and returns alone (no costs).

    The result is return-agnostic by construction (at every return the reference's percentiles
    spread evenly over [0, 1]) and keeps the signal's order among trajectories of equal return."""
    signals, returns = np.asarray(signals, dtype=float), np.asarray(returns, dtype=float)
    reference = np.asarray(reference, dtype=bool)
    ref_returns = returns[reference]
    z = (returns - ref_returns.mean()) / (ref_returns.std() or 1.0)
    z_ref, s_ref = z[reference], signals[reference]
    out = np.empty(len(signals))
    for lo in range(0, len(signals), 1024):  # bounded memory: 1024 x |reference| at a time
        weight = _return_kernel(z[lo:lo + 1024], z_ref, width)
        s = signals[lo:lo + 1024, None]
        below = (s_ref[None, :] < s) + 0.5 * (s_ref[None, :] == s)
        out[lo:lo + 1024] = (weight * below).sum(1) / np.maximum(weight.sum(1), 1e-300)
    return out


SIGNAL_RERANKS = typing.get_args(typing.get_type_hints(DiscriminatorConfig)["signal_rerank"])
"""The modes of ``DiscriminatorConfig.signal_rerank`` (its Literal is the one list of them)."""


def rerank_signals(signals: np.ndarray, returns: np.ndarray, is_demo: np.ndarray,
                   mode: str) -> np.ndarray:
    """The labels stage's ``discriminator.signal_rerank``: ``none`` (the signals as scored),
    ``within_return`` (:func:`rerank_within_return` against the unlabelled trajectories), or
    ``within_return_if_rising``: re-ranked only when the signal rises with the return over the
    unlabelled trajectories (positive Pearson correlation). The demonstrations are the
    highest-return safe trajectories, so a rising trend is the direction in which that selection
    biases the signal; a falling one goes against the bias and is kept. Signals and returns only."""
    if mode not in SIGNAL_RERANKS:
        raise ValueError(f"signal_rerank {mode!r}: one of {', '.join(SIGNAL_RERANKS)}")
    is_demo = np.asarray(is_demo, dtype=bool)
    if mode == "none" or (mode == "within_return_if_rising"
                          and not _pearson(signals[~is_demo], np.asarray(returns)[~is_demo]) > 0):
        return np.asarray(signals, dtype=float)
    return rerank_within_return(signals, returns, reference=~is_demo)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def threshold_metrics(predicted: np.ndarray, safe: np.ndarray) -> dict[str, float]:
    """Recall, precision, accuracy, F1 of ``predicted`` (safe) against ``safe``, and the Pearson
    correlation of the two 0/1 vectors (phi). Recall/precision/F1 are 0 when undefined
    (no safe trajectory / none predicted safe); Pearson is NaN when either vector is constant."""
    predicted, safe = np.asarray(predicted, dtype=bool), np.asarray(safe, dtype=bool)
    tp = float(np.sum(predicted & safe))
    recall = tp / float(safe.sum()) if safe.any() else 0.0
    precision = tp / float(predicted.sum()) if predicted.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"recall": recall, "precision": precision,
            "accuracy": float(np.mean(predicted == safe)), "f1": f1,
            "label_pearson": _pearson(predicted, safe)}


def discriminator_metrics(signals: np.ndarray, is_demo: np.ndarray, truth: HiddenTruth,
                          threshold: float = 0.5,
                          returns: np.ndarray | None = None) -> dict[str, float]:
    """How well the safety signal (and, given ``returns``, the negative-return rule) separates
    the truly safe unlabelled trajectories from the unsafe ones. All on the unlabelled set:

    * ``discriminator/auroc``, ``discriminator/average_precision`` (safe = positive; NaN when the
      unlabelled set has one class only) and ``discriminator/pearson`` (signal vs 0/1 safety);
    * at ``threshold`` (0.5 for balanced training): ``discriminator/recall``, ``/precision``,
      ``/accuracy``, ``/f1``, ``/label_pearson`` (phi of the 0/1 labels);
    * the same five with ``@demo_min``: the paper's rule, safe when the signal is >= the smallest
      signal given to a demonstration (every demonstration, held out or not);
    * ``discriminator/unlabelled_safe_fraction``;
    * given ``returns``: ``discriminator/auroc_at_equal_return`` (:func:`auroc_at_equal_return`:
      safe vs unsafe among trajectories of near-equal return), and ``stage1/signal_return_corr``,
      the signal's Pearson correlation with the return over the unlabelled trajectories (no
      truth: the return-agnostic term aims at 0);
    * the negative-return rule (score = -return: lower return ranks safer), threshold-free only:
      ``neg_return/auroc``, ``neg_return/average_precision``, ``neg_return/pearson``,
      ``neg_return/auroc_at_equal_return``. (Its
      "smallest score of a demonstration" threshold would be -(best demo return), which with
      top-return demonstrations calls almost everything safe; so no threshold metrics.)

    The only code of DSPO that reads the hidden truth: for reporting, never for training or
    selection (every key but ``stage1/signal_return_corr`` is under HIDDEN_TRUTH_PREFIXES).
    """
    signals, is_demo = np.asarray(signals, dtype=float), np.asarray(is_demo, dtype=bool)
    unlabelled = signals[~is_demo]
    safe = np.asarray(truth.unlabelled_is_safe, dtype=bool)
    if len(unlabelled) != len(safe):
        raise ValueError(f"{len(unlabelled)} unlabelled signals for {len(safe)} unlabelled trajectories")
    out: dict[str, float] = {}
    auroc, ap = ranking_metrics(unlabelled, safe)
    out.update({"discriminator/auroc": auroc, "discriminator/average_precision": ap,
                "discriminator/pearson": _pearson(unlabelled, safe)})
    out.update({f"discriminator/{k}": v
                for k, v in threshold_metrics(unlabelled > threshold, safe).items()})
    if is_demo.any():
        demo_min = float(signals[is_demo].min())
        out.update({f"discriminator/{k}@demo_min": v
                    for k, v in threshold_metrics(unlabelled >= demo_min, safe).items()})
    out["discriminator/unlabelled_safe_fraction"] = float(safe.mean()) if len(safe) else math.nan
    if returns is not None:
        unlabelled_returns = np.asarray(returns, dtype=float)[~is_demo]
        neg = -unlabelled_returns
        out["discriminator/auroc_at_equal_return"] = auroc_at_equal_return(unlabelled, safe,
                                                                           unlabelled_returns)
        out["stage1/signal_return_corr"] = _pearson(unlabelled, unlabelled_returns)
        auroc, ap = ranking_metrics(neg, safe)
        out.update({"neg_return/auroc": auroc, "neg_return/average_precision": ap,
                    "neg_return/pearson": _pearson(neg, safe),
                    "neg_return/auroc_at_equal_return": auroc_at_equal_return(neg, safe,
                                                                              unlabelled_returns)})
    return out


def heldout_demo_metrics(signals: np.ndarray, is_demo: np.ndarray, heldout: np.ndarray,
                         returns: np.ndarray | None = None) -> dict[str, float]:
    """Label-free stage-1 quality, from the learner's data alone: how highly the demonstrations
    held out of stage-1 training rank among the unlabelled trajectories (PU ranking).

    ``stage1/heldout_demo_auroc``: AUROC of held-out demonstrations (positive) vs unlabelled
    trajectories (negative); ``stage1/heldout_demo_average_precision``; and
    ``stage1/heldout_demo_mean_signal``. NaN without held-out demonstrations. Because some
    unlabelled trajectories are safe, a perfect safety signal scores below 1 (it ties held-out
    demonstrations with the safe unlabelled ones); it still rises with how well the signal ranks
    safe demonstration-like behaviour above the rest. With top-return demonstrations it also
    rewards a signal that merely follows the return; given ``returns``,
    ``stage1/heldout_demo_auroc_return_matched`` compares the held-out demonstrations only with
    the unlabelled trajectories whose return is at least the lowest held-out one, where return
    alone does not separate them.
    """
    signals, is_demo = np.asarray(signals, dtype=float), np.asarray(is_demo, dtype=bool)
    heldout = np.asarray(heldout, dtype=bool)
    out = {"stage1/heldout_demo_auroc": math.nan, "stage1/heldout_demo_average_precision": math.nan,
           "stage1/heldout_demo_mean_signal": math.nan}
    if returns is not None:
        out["stage1/heldout_demo_auroc_return_matched"] = math.nan
    if not heldout.any():
        return out
    pool = heldout | ~is_demo
    auroc, ap = ranking_metrics(signals[pool], heldout[pool])
    out.update({"stage1/heldout_demo_auroc": auroc, "stage1/heldout_demo_average_precision": ap,
                "stage1/heldout_demo_mean_signal": float(signals[heldout].mean())})
    if returns is not None:
        returns = np.asarray(returns, dtype=float)
        matched = heldout | (~is_demo & (returns >= returns[heldout].min()))
        out["stage1/heldout_demo_auroc_return_matched"] = ranking_metrics(
            signals[matched], heldout[matched])[0]
    return out
