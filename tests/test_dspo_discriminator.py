"""Stage 1: SafetyTransformer masking, window scoring, the vCLUB bound, the trainer and its ablations."""

import numpy as np
import pytest
import torch

from dspo_ray.data import HiddenTruth
from dspo_ray.dspo.config import DiscriminatorConfig
from dspo_ray.dspo.discriminator import (auroc_at_equal_return, discriminator_metrics,
                                         heldout_demo_metrics, rerank_signals,
                                         rerank_within_return,
                                         load_discriminator, return_bins, score_trajectories,
                                         train_discriminator)
from dspo_ray.metrics import reads_hidden_truth
from dspo_ray.dspo.safety_transformer import (MLPDiscriminator, ReturnClassifier,
                                              SafetyTransformer, vclub_bound)
from dspo_ray.dspo.windows import RaggedTrajectories
from dspo_ray.training import LocalContext

torch.set_num_threads(1)


def small_transformer(n_layers=2):
    torch.manual_seed(0)
    return SafetyTransformer(obs_dim=5, act_dim=2, max_timestep=300, embed_dim=32, n_layers=n_layers,
                             n_heads=2, dropout=0.0, attention_dim=16).eval()


def random_window(b, t, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, 5, generator=g), torch.randn(b, t, 2, generator=g),
            torch.arange(t).repeat(b, 1), torch.ones(b, t, dtype=torch.bool))


def test_causal_masking_outputs_at_t_ignore_later_inputs():
    model = small_transformer()
    obs, act, steps, mask = random_window(3, 20)
    x = model.encode(obs, act, steps, mask)
    obs2, act2 = obs.clone(), act.clone()
    obs2[:, 12:] += 10.0
    act2[:, 12:] -= 5.0
    x2 = model.encode(obs2, act2, steps, mask)
    torch.testing.assert_close(x[:, :12], x2[:, :12], atol=1e-5, rtol=1e-5)
    assert (x[:, 12:] - x2[:, 12:]).abs().max() > 1e-2, "later outputs must see the change"
    # the action a_t is visible to x_t (x_t is the output at the action token)
    act3 = act.clone()
    act3[:, 7] += 3.0
    x3 = model.encode(obs, act3, steps, mask)
    torch.testing.assert_close(x[:, :7], x3[:, :7], atol=1e-5, rtol=1e-5)
    assert (x[:, 7] - x3[:, 7]).abs().max() > 1e-3


@pytest.mark.parametrize("variant", ["transformer", "mlp"])
def test_padding_does_not_change_scores(variant):
    model = small_transformer() if variant == "transformer" else MLPDiscriminator(5, 2, (16, 16), 0.0).eval()
    obs, act, steps, mask = random_window(1, 13)
    logit = model(obs, act, steps, mask)
    pad = 7
    g = torch.Generator().manual_seed(1)
    obs_p = torch.cat([obs, 100 * torch.randn(1, pad, 5, generator=g)], 1)
    act_p = torch.cat([act, 100 * torch.randn(1, pad, 2, generator=g)], 1)
    steps_p = torch.cat([steps, torch.zeros(1, pad, dtype=torch.long)], 1)
    mask_p = torch.cat([mask, torch.zeros(1, pad, dtype=torch.bool)], 1)
    torch.testing.assert_close(model(obs_p, act_p, steps_p, mask_p), logit, atol=1e-5, rtol=1e-5)
    # batched with a longer window, the short one's score is the same
    other = random_window(1, 20, seed=3)
    batch = [torch.cat([a, b]) for a, b in zip((obs_p, act_p, steps_p, mask_p), other)]
    torch.testing.assert_close(model(*batch)[0], logit[0], atol=1e-5, rtol=1e-5)


def ragged(lengths, obs_dim=5, act_dim=2, seed=0, n_demo=2):
    rng = np.random.default_rng(seed)
    total = int(sum(lengths))
    return RaggedTrajectories(
        observations=rng.normal(size=(total, obs_dim)).astype(np.float32),
        actions=rng.normal(size=(total, act_dim)).astype(np.float32),
        lengths=np.array(lengths), returns=rng.normal(size=len(lengths)),
        is_demo=np.arange(len(lengths)) < n_demo)


def test_window_scoring_tiles_trajectories_and_matches_whole_pass():
    model = small_transformer(n_layers=1)
    traj = ragged([30, 7, 45])
    # one window covering each whole trajectory = the paper's formula on the trajectory
    whole = score_trajectories(model, traj, window=64)
    for i, (s, n) in enumerate(zip(traj.starts, traj.lengths)):
        obs = torch.as_tensor(traj.observations[s:s + n])[None]
        act = torch.as_tensor(traj.actions[s:s + n])[None]
        logit = model(obs, act, torch.arange(n)[None], torch.ones(1, n, dtype=torch.bool))
        assert whole[i] == pytest.approx(torch.sigmoid(logit).item(), abs=1e-5)
    # with the MLP (per-step z_t) tiled windows give exactly the whole-trajectory mean
    mlp = MLPDiscriminator(5, 2, (16,), 0.0).eval()
    np.testing.assert_allclose(score_trajectories(mlp, traj, window=8),
                               score_trajectories(mlp, traj, window=64), atol=1e-5)
    tiled = score_trajectories(model, traj, window=10)
    assert tiled.shape == (3,) and np.all((tiled > 0) & (tiled < 1))
    # no trajectory (a generation filter that let no window through): no signal, no error
    none = RaggedTrajectories(traj.observations[:0], traj.actions[:0], np.zeros(0, np.int64),
                              np.zeros(0), np.zeros(0, bool))
    assert score_trajectories(model, none, window=10).shape == (0,)


def fit_estimator(z, bins, k, steps=300):
    torch.manual_seed(0)
    q = ReturnClassifier(k, 32)
    opt = torch.optim.Adam(q.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.nll_loss(q(z), bins)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return vclub_bound(q(z), bins).item()


def test_vclub_bound_zero_for_independent_positive_for_dependent():
    g = torch.Generator().manual_seed(0)
    n, k = 2000, 10
    z = torch.rand(n, generator=g)
    independent = torch.randint(0, k, (n,), generator=g)
    dependent = (z * k).long().clamp(max=k - 1)  # the bin is a function of the signal
    b_ind = fit_estimator(z, independent, k)
    b_dep = fit_estimator(z, dependent, k)
    assert abs(b_ind) < 0.05, b_ind
    assert b_dep > 1.0, b_dep  # log(10) = 2.3 for a perfect predictor


def test_return_bins():
    r = np.array([0.0, 1.0, 2.0, 9.99, 10.0])
    np.testing.assert_array_equal(return_bins(r, 10), [0, 1, 2, 9, 9])
    q = return_bins(np.arange(100.0), 4, "quantile")
    assert np.bincount(q).tolist() == [25, 25, 25, 25]


def test_metrics_read_truth_only_for_unlabelled():
    truth = HiddenTruth(cost_limit=10, demo_cost_returns=np.zeros(2),
                        unlabelled_cost_returns=np.array([0, 5, 20, 30, 8.0]))
    signals = np.array([0.9, 0.9, 0.8, 0.3, 0.7, 0.1, 0.2])  # 2 demos, then 5 unlabelled
    m = discriminator_metrics(signals, np.arange(7) < 2, truth)
    assert m["discriminator/recall"] == pytest.approx(1 / 3)
    assert m["discriminator/precision"] == pytest.approx(1 / 2)
    assert m["discriminator/accuracy"] == pytest.approx(2 / 5)
    assert -1 <= m["discriminator/pearson"] <= 1


def test_metrics_match_sklearn_and_hand_computed_values():
    from sklearn.metrics import (accuracy_score, average_precision_score, f1_score,
                                 precision_score, recall_score, roc_auc_score)

    # 3 demos (signals 0.95, 0.6, 0.9 -> demo_min 0.6), 8 unlabelled
    truth = HiddenTruth(cost_limit=10, demo_cost_returns=np.zeros(3),
                        unlabelled_cost_returns=np.array([0, 40, 5, 30, 9, 50, 1, 20.0]))
    safe = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    unl = np.array([0.8, 0.7, 0.55, 0.3, 0.65, 0.45, 0.4, 0.62])
    signals = np.concatenate([[0.95, 0.6, 0.9], unl])
    is_demo = np.arange(11) < 3
    returns = np.concatenate([[100, 90, 95], [10, 60, 30, 50, 5, 70, 40, 45.0]])
    m = discriminator_metrics(signals, is_demo, truth, 0.5, returns=returns)
    assert m["discriminator/auroc"] == pytest.approx(roc_auc_score(safe, unl))
    assert m["discriminator/auroc"] == pytest.approx(10 / 16)  # pairs (safe > unsafe) by hand
    assert m["discriminator/average_precision"] == pytest.approx(average_precision_score(safe, unl))
    assert m["discriminator/pearson"] == pytest.approx(np.corrcoef(unl, safe)[0, 1])
    for rule, pred in (("", unl > 0.5), ("@demo_min", unl >= 0.6)):
        assert m[f"discriminator/recall{rule}"] == pytest.approx(recall_score(safe, pred))
        assert m[f"discriminator/precision{rule}"] == pytest.approx(precision_score(safe, pred))
        assert m[f"discriminator/accuracy{rule}"] == pytest.approx(accuracy_score(safe, pred))
        assert m[f"discriminator/f1{rule}"] == pytest.approx(f1_score(safe, pred))
        assert m[f"discriminator/label_pearson{rule}"] == pytest.approx(np.corrcoef(pred, safe)[0, 1])
    # at 0.5: predicted safe = {0.8, 0.7, 0.55, 0.65, 0.62} -> tp 3 of 4 safe, 5 predicted
    assert m["discriminator/recall"] == pytest.approx(3 / 4)
    assert m["discriminator/precision"] == pytest.approx(3 / 5)
    # demo_min 0.6: predicted safe = {0.8, 0.7, 0.65, 0.62} -> tp 2
    assert m["discriminator/recall@demo_min"] == pytest.approx(2 / 4)
    neg = -returns[3:]
    assert m["neg_return/auroc"] == pytest.approx(roc_auc_score(safe, neg)) == 1.0
    assert m["neg_return/average_precision"] == pytest.approx(average_precision_score(safe, neg))
    assert m["discriminator/unlabelled_safe_fraction"] == 0.5
    # at equal return: each (safe, unsafe) pair weighted by a Gaussian kernel on the return gap
    z = (returns[3:] - returns[3:].mean()) / returns[3:].std()
    num = den = 0.0
    for i in np.flatnonzero(safe):
        for j in np.flatnonzero(~safe):
            w = np.exp(-0.5 * ((z[i] - z[j]) / 0.1) ** 2)
            num, den = num + w * (unl[i] > unl[j]), den + w
    assert m["discriminator/auroc_at_equal_return"] == pytest.approx(num / den)
    # a wide kernel weighs every pair alike: the plain AUROC
    assert auroc_at_equal_return(unl, safe, returns[3:], width=1e6) == pytest.approx(10 / 16)
    assert m["stage1/signal_return_corr"] == pytest.approx(np.corrcoef(unl, returns[3:])[0, 1])
    # every metric but the signal-return correlation reads the truth (that one needs no costs)
    assert all(reads_hidden_truth(k) for k in m if k != "stage1/signal_return_corr")
    assert not reads_hidden_truth("stage1/signal_return_corr")


def test_rerank_within_return_makes_a_confounded_signal_return_agnostic():
    """A signal that knows safety but also rises with the return, on data where safety falls with
    the return: re-ranked within its return it no longer follows the return, keeps its order among
    trajectories of equal return, and ranks safety better overall. Signals and returns only."""
    import inspect

    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    returns = rng.uniform(0, 1, 1500)
    safe = rng.uniform(size=1500) < 1 / (1 + np.exp(6 * (returns - 0.5)))
    signal = safe + 3 * returns + rng.normal(0, 0.5, 1500)
    reference = np.ones(1500, bool)
    reference[:15] = False  # like demonstrations: re-ranked against the others
    reranked = rerank_within_return(signal, returns, reference)
    assert abs(np.corrcoef(signal, returns)[0, 1]) > 0.6
    assert abs(np.corrcoef(reranked, returns)[0, 1]) < 0.05
    assert 0 <= reranked.min() and reranked.max() <= 1
    assert auroc_at_equal_return(reranked, safe, returns) == pytest.approx(
        auroc_at_equal_return(signal, safe, returns), abs=0.02)
    assert roc_auc_score(safe, reranked) > roc_auc_score(safe, signal) + 0.2
    assert list(inspect.signature(rerank_within_return).parameters) == [
        "signals", "returns", "reference", "width"]
    # the labels stage's modes: a rising signal is re-ranked by both, a falling one only by
    # within_return; none leaves it alone
    is_demo = ~reference
    np.testing.assert_allclose(rerank_signals(signal, returns, is_demo, "within_return_if_rising"),
                               reranked)
    falling = safe - 3 * returns + rng.normal(0, 0.5, 1500)
    np.testing.assert_array_equal(rerank_signals(falling, returns, is_demo, "within_return_if_rising"),
                                  falling)
    assert abs(np.corrcoef(rerank_signals(falling, returns, is_demo, "within_return"),
                           returns)[0, 1]) < 0.05
    np.testing.assert_array_equal(rerank_signals(signal, returns, is_demo, "none"), signal)
    with pytest.raises(ValueError, match="signal_rerank 'sideways'"):
        rerank_signals(signal, returns, is_demo, "sideways")


def test_auroc_at_equal_return_gives_a_return_follower_no_credit():
    """Safety depends on the return, and on nothing else the scores see: ranking by negative
    return scores high on the plain AUROC and near 0.5 at equal return; a score that carries
    the safety itself (with noise, independent of the return) scores alike on both."""
    rng = np.random.default_rng(0)
    returns = rng.uniform(0, 1, 2000)
    safe = rng.uniform(size=2000) < 1 / (1 + np.exp(12 * (returns - 0.5)))
    rule, informed = -returns, safe + rng.normal(0, 0.7, 2000)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(safe, rule) > 0.85
    assert 0.5 <= auroc_at_equal_return(rule, safe, returns) < 0.6  # what is left: the kernel's width
    assert auroc_at_equal_return(informed, safe, returns) == pytest.approx(
        roc_auc_score(safe, informed), abs=0.05)
    assert np.isnan(auroc_at_equal_return(rule, np.ones(2000, bool), returns))


def test_metrics_one_class_unlabelled_set_gives_nan_rankings():
    truth = HiddenTruth(cost_limit=10, demo_cost_returns=np.zeros(1),
                        unlabelled_cost_returns=np.array([0, 1, 2.0]))
    m = discriminator_metrics(np.array([0.9, 0.8, 0.2, 0.6]), np.arange(4) < 1, truth,
                              returns=np.arange(4.0))
    assert np.isnan(m["discriminator/auroc"]) and np.isnan(m["discriminator/average_precision"])
    assert np.isnan(m["neg_return/auroc"]) and np.isnan(m["discriminator/pearson"])
    assert m["discriminator/recall"] == pytest.approx(2 / 3) and m["discriminator/precision"] == 1


def test_heldout_demo_metric_is_label_free_pu_ranking():
    from sklearn.metrics import roc_auc_score

    is_demo = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0], bool)
    heldout = np.array([0, 0, 1, 1, 0, 0, 0, 0, 0], bool)
    signals = np.array([0.99, 0.98, 0.7, 0.4, 0.9, 0.5, 0.3, 0.2, 0.1])
    m = heldout_demo_metrics(signals, is_demo, heldout)
    pool = heldout | ~is_demo
    assert m["stage1/heldout_demo_auroc"] == pytest.approx(roc_auc_score(heldout[pool], signals[pool]))
    assert m["stage1/heldout_demo_auroc"] == pytest.approx((4 + 3) / 10)  # by hand
    assert m["stage1/heldout_demo_mean_signal"] == pytest.approx(0.55)
    assert not any(reads_hidden_truth(k) for k in m)
    assert np.isnan(heldout_demo_metrics(signals, is_demo, np.zeros(9, bool))["stage1/heldout_demo_auroc"])
    # return-matched: only unlabelled trajectories with return >= the lowest held-out demo's (5)
    returns = np.array([9, 9, 6, 5, 8, 1, 7, 2, 3.0])  # unlabelled kept: 0.9 (8), 0.3 (7)
    m = heldout_demo_metrics(signals, is_demo, heldout, returns)
    assert m["stage1/heldout_demo_auroc_return_matched"] == pytest.approx(2 / 4)
    assert m["stage1/heldout_demo_auroc"] == pytest.approx(7 / 10)


def separable_data(seed=0):
    """Demos and safe unlabelled: small actions; unsafe: large actions. Returns uninformative."""
    rng = np.random.default_rng(seed)
    lengths, obs, act, returns, safe = [], [], [], [], []
    for i in range(64):
        is_demo = i < 8
        is_safe = is_demo or i % 2 == 0
        n = int(rng.integers(20, 40))
        lengths.append(n)
        obs.append(rng.normal(size=(n, 3)))
        act.append(rng.normal(scale=0.3 if is_safe else 1.5, size=(n, 2)))
        returns.append(rng.normal())
        safe.append(is_safe)
    traj = RaggedTrajectories(np.concatenate(obs).astype(np.float32),
                              np.concatenate(act).astype(np.float32), np.array(lengths),
                              np.array(returns), np.arange(64) < 8)
    return traj, np.array(safe)


@pytest.mark.parametrize("variant,return_agnostic,gp", [
    ("safety_transformer", True, 0.0), ("mlp", False, 0.0), ("mlp", False, 1.0)])
def test_trainer_learns_and_resumes(tmp_path, variant, return_agnostic, gp):
    traj, safe = separable_data()
    cfg = DiscriminatorConfig(variant=variant, embed_dim=32, n_heads=2, attention_dim=16,
                              mlp_hidden=(32, 32), window=16, batch_size=16, steps=120,
                              learning_rate=3e-3, warmup_steps=10, return_agnostic=return_agnostic,
                              gradient_penalty=gp, log_every=20, checkpoint_every=60)
    ctx = LocalContext(checkpoint_path=tmp_path / "ckpt.pt", device=torch.device("cpu"))
    artefact = train_discriminator(ctx, trajectories=traj, config=cfg, max_timestep=64, seed=0)
    names = set(ctx.history[-1])
    assert "losses/discriminator" in names and ("losses/vclub" in names) == return_agnostic
    assert ("losses/gradient_penalty" in names) == (gp > 0)
    signals = score_trajectories(load_discriminator(artefact), traj, window=16)
    unl = ~traj.is_demo
    assert signals[unl][safe[unl]].mean() > signals[unl][~safe[unl]].mean() + 0.1
    # resume: an interrupted run continues from its checkpoint (step 120 saved): no more steps
    ctx2 = LocalContext(checkpoint_path=tmp_path / "ckpt.pt", device=torch.device("cpu"))
    again = train_discriminator(ctx2, trajectories=traj, config=cfg, max_timestep=64, seed=0)
    assert ctx2.history == []
    for k, v in artefact["state_dict"].items():
        torch.testing.assert_close(again["state_dict"][k], v)
