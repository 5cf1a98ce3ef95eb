"""Issue 12: the return-agnostic term on a constructed dataset where safety and return are
independent by design, and the demonstrations are nevertheless the high-return safe trajectories.

Every trajectory has a weak safety feature (state dimension 0: mean +sep if safe, -sep if unsafe,
unit per-step noise) and a clean return feature (state dimension 1: the trajectory's return
fraction, nearly noise-free); safety is drawn independently of the return. The 15 demonstrations
are safe with return fractions in [0.8, 1], the unlabelled ones uniform in [0, 1]. A plain
demonstration-vs-unlabelled discriminator latches onto the return feature (it separates the
demonstrations perfectly), so its signal ranks the unlabelled trajectories by return, which says
nothing about safety here. The vCLUB term estimated on the data distribution
(``vclub_samples="data"``) must remove that: lower |correlation with return| and higher AUROC of
safety. The term on the balanced batch (``"batch"``, the behaviour before issue 12) does not get
there: it anti-correlates the signal with the return instead.
"""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from dspo_ray.dspo.config import DiscriminatorConfig
from dspo_ray.dspo.discriminator import (estimate_class_prior, load_discriminator,
                                         negative_sampling_weights, nnpu_risk,
                                         score_trajectories, train_discriminator, update_step)
from dspo_ray.dspo.safety_transformer import MLPDiscriminator, ReturnClassifier
from dspo_ray.dspo.windows import RaggedTrajectories
from dspo_ray.training import LocalContext

torch.set_num_threads(1)
T = 20


def independent_safety_and_return(seed: int, n_unlabelled: int = 300, n_demo: int = 15,
                                  sep: float = 0.3) -> tuple[RaggedTrajectories, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = n_demo + n_unlabelled
    safe = np.r_[np.ones(n_demo, bool), rng.random(n_unlabelled) < 0.5]
    fraction = np.r_[rng.uniform(0.8, 1.0, n_demo), rng.uniform(0.0, 1.0, n_unlabelled)]
    obs = rng.normal(size=(n, T, 4))
    obs[:, :, 0] += np.where(safe, sep, -sep)[:, None]
    obs[:, :, 1] = fraction[:, None] + 0.05 * rng.normal(size=(n, T))
    act = rng.normal(size=(n, T, 2))
    returns = 100 * fraction + rng.normal(size=n)
    traj = RaggedTrajectories(obs.reshape(n * T, 4).astype(np.float32),
                              act.reshape(n * T, 2).astype(np.float32), np.full(n, T), returns,
                              np.arange(n) < n_demo)
    return traj, safe


def signal_quality(traj, safe, **overrides) -> tuple[float, float]:
    """(AUROC of safety, Spearman with the return) of the signal on the unlabelled trajectories."""
    cfg = DiscriminatorConfig(**{**dict(variant="mlp", mlp_hidden=(32, 32), dropout=0.0, window=T,
                                        batch_size=32, steps=300, learning_rate=3e-3,
                                        warmup_steps=20, weight_decay=0.0, log_every=100),
                                 **overrides})
    artefact = train_discriminator(LocalContext(device=torch.device("cpu")), traj, cfg,
                                   max_timestep=T, seed=0)
    signals = score_trajectories(load_discriminator(artefact), traj, T)
    unl = ~traj.is_demo
    return (roc_auc_score(safe[unl], signals[unl]),
            spearmanr(signals[unl], traj.returns[unl])[0])


@pytest.mark.parametrize("seed", [0, 1])
def test_data_distribution_vclub_removes_return_and_recovers_safety(seed):
    traj, safe = independent_safety_and_return(seed)
    auc_none, rho_none = signal_quality(traj, safe, return_agnostic=False)
    auc_data, rho_data = signal_quality(traj, safe, vclub_samples="data", vclub_coef=1.0)
    auc_batch, _ = signal_quality(traj, safe, vclub_samples="batch", vclub_coef=1.0)
    # the trap works: without the term the signal is (nearly) the return, and safety is missed
    assert rho_none > 0.8 and auc_none < 0.7, (auc_none, rho_none)
    # with the term on the data distribution the return is mostly gone, and safety is found
    assert abs(rho_data) < 0.5 and abs(rho_data) < abs(rho_none) - 0.4, (rho_none, rho_data)
    assert auc_data > 0.8 and auc_data > auc_none + 0.15, (auc_none, auc_data)
    # the term on the balanced batch does not get there
    assert auc_batch < auc_data - 0.1, (auc_batch, auc_data)


def test_vclub_data_mode_needs_its_batch_and_batch_mode_keeps_its_stream():
    model, estimator = MLPDiscriminator(4, 2, (8,), 0.0), ReturnClassifier(10, 8)
    opt = torch.optim.Adam(model.parameters())
    est_opt = torch.optim.Adam(estimator.parameters())
    batch = (torch.randn(4, T, 4), torch.randn(4, T, 2), torch.arange(T).repeat(4, 1),
             torch.ones(4, T, dtype=torch.bool))
    labels, bins = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([9, 8, 1, 5])
    with pytest.raises(ValueError, match="data_batch"):
        update_step(model, estimator, opt, est_opt, batch, labels, bins,
                    DiscriminatorConfig(vclub_samples="data"), torch.Generator())
    out = update_step(model, estimator, opt, est_opt, batch, labels, bins,
                      DiscriminatorConfig(vclub_samples="data"), torch.Generator(),
                      data_batch=batch, data_bins=bins)
    assert "losses/vclub" in out

    traj, _ = independent_safety_and_return(0, n_unlabelled=40)
    base = dict(variant="mlp", mlp_hidden=(8,), dropout=0.0, window=T, batch_size=8, steps=5,
                warmup_steps=1, log_every=5)
    ra = train_discriminator(LocalContext(device=torch.device("cpu")), traj,
                             DiscriminatorConfig(**base, return_agnostic=False), T, seed=0)
    # 'batch' draws no extra samples: the balanced batches (hence the model, up to the vCLUB
    # gradient, which coefficient ~0 removes) are those of a run without the term
    tiny = train_discriminator(LocalContext(device=torch.device("cpu")), traj,
                               DiscriminatorConfig(**base, vclub_samples="batch", vclub_coef=1e-12),
                               T, seed=0)
    for k, v in ra["state_dict"].items():
        torch.testing.assert_close(tiny["state_dict"][k], v)


def test_class_prior_estimate_from_learner_data_only():
    # demos drawn like the safe unlabelled ones (SCAR), safe and unsafe well apart: e1 ~ pi
    rng = np.random.default_rng(0)
    n_demo, n_unl, pi = 30, 400, 0.2
    safe = np.r_[np.ones(n_demo, bool), rng.random(n_unl) < pi]
    obs = rng.normal(size=(len(safe), T, 3)) + np.where(safe, 3.0, -3.0)[:, None, None]
    n = len(safe)
    traj = RaggedTrajectories(obs.reshape(n * T, 3).astype(np.float32),
                              rng.normal(size=(n * T, 1)).astype(np.float32), np.full(n, T),
                              rng.normal(size=n), np.arange(n) < n_demo)
    estimate = estimate_class_prior(traj)
    assert abs(estimate - safe[n_demo:].mean()) < 0.07, (estimate, safe[n_demo:].mean())


def test_nnpu_risk_is_balanced_and_non_negative():
    softplus = torch.nn.functional.softplus
    labels = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.0])
    logits = torch.tensor([2.0, 1.0, -1.0, 0.5, -2.0])
    objective, risk_n = nnpu_risk(logits, labels, prior=0.2)
    r_p_plus, r_p_minus = softplus(-logits[:2]).mean(), softplus(logits[:2]).mean()
    expected_n = (softplus(logits[2:]).mean() - 0.2 * r_p_minus) / 0.8
    torch.testing.assert_close(risk_n, expected_n)
    torch.testing.assert_close(objective, 0.5 * r_p_plus + 0.5 * expected_n)
    # unlabelled pushed far below the positives' share: the negative risk goes below 0 and the
    # objective becomes its negation (a step back up), never a reward for overfitting
    objective, risk_n = nnpu_risk(torch.tensor([-3.0, -3.0, -9.0, -9.0, -9.0]), labels, prior=0.5)
    assert risk_n < 0 and objective == pytest.approx(-risk_n.item())


def test_min_window_scoring_is_the_least_safe_window_and_follows_the_artefact():
    traj, _ = independent_safety_and_return(0, n_unlabelled=5)
    cfg = DiscriminatorConfig(variant="mlp", mlp_hidden=(8,), dropout=0.0, window=5, batch_size=4,
                              steps=2, warmup_steps=1, log_every=2, return_agnostic=False,
                              score_reduction="min_window")
    artefact = train_discriminator(LocalContext(device=torch.device("cpu")), traj, cfg, T, seed=0)
    model = load_discriminator(artefact)
    lowest = score_trajectories(model, traj, 5)  # the artefact's reduction: min_window
    mean = score_trajectories(model, traj, 5, reduction="mean")
    with torch.no_grad():
        z = model.step_values(torch.as_tensor(traj.observations[:T])[None],
                              torch.as_tensor(traj.actions[:T])[None], torch.arange(T)[None],
                              torch.ones(1, T, dtype=torch.bool))[0]
    window_means = z.view(T // 5, 5).mean(1)
    assert lowest[0] == pytest.approx(torch.sigmoid(window_means.min()).item(), abs=1e-5)
    assert mean[0] == pytest.approx(torch.sigmoid(z.mean()).item(), abs=1e-5)
    assert np.all(lowest <= mean + 1e-9)


def test_return_matched_negatives_weights_follow_the_demonstrations_returns():
    returns = np.r_[[100.0, 98.0, 99.0], np.linspace(0, 100, 11)]
    is_demo = np.arange(len(returns)) < 3
    uniform = negative_sampling_weights(returns, is_demo, "uniform")
    np.testing.assert_allclose(uniform, np.full(11, 1 / 11))
    matched = negative_sampling_weights(returns, is_demo, "return_matched", bandwidth=0.1)
    assert matched.sum() == pytest.approx(1.0) and (matched > 0).all()
    # the unlabelled trajectories that earn what the demonstrations earn are drawn nearly always
    assert matched[-1] > 0.5 and matched[:5].sum() < 1e-3
    with pytest.raises(ValueError, match="negatives"):
        negative_sampling_weights(returns, is_demo, "nearest")


@pytest.mark.parametrize("seed", [0, 1])
def test_return_matched_negatives_remove_return_and_recover_safety(seed):
    """Matching the negatives' returns to the demonstrations' takes the return cue out of the
    BCE batch: on data where safety and return are independent, the signal stops following the
    return and finds safety (no vCLUB term)."""
    traj, safe = independent_safety_and_return(seed)
    auc_uniform, rho_uniform = signal_quality(traj, safe, return_agnostic=False)
    auc_matched, rho_matched = signal_quality(traj, safe, return_agnostic=False,
                                              negatives="return_matched")
    assert abs(rho_matched) < abs(rho_uniform) - 0.4, (rho_uniform, rho_matched)
    assert auc_matched > auc_uniform + 0.15, (auc_uniform, auc_matched)
