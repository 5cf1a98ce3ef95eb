"""DSPO end to end on a small real CarCircle dataset (recorded in the simulator), and stage resume."""

import json

import numpy as np
import pytest
import torch

from dspo_ray.data import find_dataset
from dspo_ray.dspo.config import profile_config
from dspo_ray.dspo.pipeline import ARTEFACTS, run_dspo
from dspo_ray.saved_policies import load_policy
from dspo_ray.training import LocalRunner

torch.set_num_threads(1)
TASK = "CarCircle"


def tiny_config(dataset, **overrides):
    return profile_config("quick", task=TASK, dataset=str(dataset), eval_episodes=2, eval_workers=1,
                          **{"split.n_safe": 5, "split.n_unlabelled": 40,
                             "discriminator.steps": 6, "discriminator.log_every": 3,
                             "diffusion.steps": 10, "diffusion.log_every": 5,
                             "generation.n_windows": 8, "bc.steps": 50, "bc.log_every": 25,
                             **overrides})


def test_training_stages_follow_the_one_stage_list():
    """dspo.config.STAGES is the stage list (stop_after's choices, the sweep's progress count);
    the pipeline's TRAINING_STAGES run in its order, evaluation last, each with its artefact."""
    import typing

    from dspo_ray.dspo.config import STAGES, DSPOConfig
    from dspo_ray.dspo.pipeline import TRAINING_STAGES
    from dspo_ray.policies import POLICY_FILE

    assert tuple(s.name for s in TRAINING_STAGES) + ("evaluation",) == STAGES
    assert tuple(ARTEFACTS) == STAGES and ARTEFACTS["bc"] == POLICY_FILE
    stop_after = typing.get_type_hints(DSPOConfig)["stop_after"]
    assert typing.get_args(typing.get_args(stop_after)[0]) == STAGES[:-1]


class RecordingRunner(LocalRunner):
    """Records which stages trained (the pipeline calls the runner for every trained model)."""

    def __init__(self):
        super().__init__()
        self.stages = []

    def run(self, stage, train_fn, workdir, **kwargs):
        self.stages.append(stage)
        return super().run(stage, train_fn, workdir, **kwargs)


def copy_trained_stages(source, target):
    """A finished run's stage-1 and diffusion artefacts (with their sidecars) into ``target``, so
    that a run there with other generation settings trains nothing again."""
    import shutil

    target.mkdir(exist_ok=True)
    for stage in ("discriminator", "labels", "diffusion"):
        for name in (ARTEFACTS[stage], ARTEFACTS[stage] + ".metrics.json"):
            shutil.copy2(source / name, target / name)


def test_end_to_end_then_resume_skips_finished_stages(carcircle_dataset, tmp_path):
    assert find_dataset(TASK, carcircle_dataset).exists()
    config = tiny_config(carcircle_dataset)
    reports, runner = [], RecordingRunner()
    result = run_dspo(config, tmp_path / "run", runner=runner, report=reports.append)

    assert runner.stages == ["discriminator", "diffusion", "bc"]
    assert [r["stage"] for r in reports] == ["discriminator", "labels", "diffusion", "generation",
                                             "bc", "evaluation"]
    assert "discriminator/recall" in reports[1] and "eval/normalized_reward" not in reports[1]
    assert 0 <= reports[1]["stage1/heldout_demo_auroc"] <= 1  # the label-free selection metric
    assert reports[1]["stage1/n_heldout_demos"] == 3 and "diagnostic/oracle_signal" not in result
    for key in ("eval/normalized_reward", "eval/normalized_cost", "eval/safe", "discriminator/recall",
                "discriminator/accuracy", "discriminator/f1", "discriminator/pearson",
                "time/discriminator_s", "time/diffusion_s", "time/bc_s", "time/evaluation_s"):
        assert key in result, key
    assert np.isfinite(result["eval/normalized_reward"]) and result["eval/episodes"] == 2
    run = tmp_path / "run"
    for name in ARTEFACTS.values():
        assert (run / name).exists(), name
    assert not list(run.glob("*.in-progress.pt")) and not list(run.glob(".*tmp*"))
    with np.load(run / "labels.npz") as labels:
        assert labels["safety_signal"].shape == (45,) and labels["is_demo"].sum() == 5
        assert np.all((labels["safety_signal"] > 0) & (labels["safety_signal"] < 1))
        min_demo_signal = labels["safety_signal"][:5].min()  # every demo, held out or not
        assert labels["heldout_demo"].sum() == 3 and not labels["heldout_demo"][5:].any()
    with np.load(run / "generated.npz") as gen:
        assert gen["observations"].shape == (8, 16, 8) and gen["actions"].shape == (8, 16, 2)
        assert np.allclose(gen["safety_condition"], min_demo_signal)
    policy = load_policy(run / "policy.pt")
    assert policy.act(np.zeros(8, np.float32)).shape == (2,)
    assert json.loads((run / "result.json").read_text()) == pytest.approx(result, nan_ok=True)

    # resume: with generation and later artefacts gone, only those stages run again
    disc_mtime = (run / "discriminator.pt").stat().st_mtime_ns
    for name in ("generated.npz", "policy.pt", "result.json"):
        (run / name).unlink()
    runner2 = RecordingRunner()
    result2 = run_dspo(config, run, runner=runner2)
    assert runner2.stages == ["bc"]
    assert (run / "discriminator.pt").stat().st_mtime_ns == disc_mtime
    assert result2["time/discriminator_s"] == result["time/discriminator_s"]  # kept, not re-measured
    # a finished run returns its result without running anything
    runner3 = RecordingRunner()
    assert run_dspo(config, run, runner=runner3) == pytest.approx(result2, nan_ok=True) and runner3.stages == []
    # resuming with other settings would mix two configs' artefacts: refused, naming the setting
    with pytest.raises(ValueError, match="discriminator"):
        run_dspo(tiny_config(carcircle_dataset, **{"discriminator.vclub_coef": 0.5}), run)


class KeepingRunner(LocalRunner):
    """Records what each stage trained on."""

    def __init__(self):
        super().__init__()
        self.kwargs = {}

    def run(self, stage, train_fn, workdir, **kwargs):
        self.kwargs[stage] = kwargs
        return super().run(stage, train_fn, workdir, **kwargs)


def test_stage1_only_run_holds_demos_out_of_stage1(carcircle_dataset, tmp_path):
    config = tiny_config(carcircle_dataset, stop_after="labels", holdout_demos=2)
    runner, reports = KeepingRunner(), []
    result = run_dspo(config, tmp_path / "run", runner=runner, report=reports.append)
    assert list(runner.kwargs) == ["discriminator"]  # no diffusion, no BC, no evaluation
    trained_on = runner.kwargs["discriminator"]["trajectories"]
    assert len(trained_on) == 43 and trained_on.is_demo.sum() == 3  # 2 of 5 demos held out
    assert result["run/stopped_after_stage"] == 2 and "eval/normalized_reward" not in result
    assert 0 <= result["stage1/heldout_demo_auroc"] <= 1
    for key in ("discriminator/auroc", "discriminator/average_precision", "discriminator/f1@demo_min",
                "neg_return/auroc"):
        assert key in result, key
    assert not (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "run" / "diffusion.pt").exists()
    with pytest.raises(ValueError, match="holdout_demos"):
        run_dspo(tiny_config(carcircle_dataset, stop_after="labels", holdout_demos=5), tmp_path / "x")


def test_oracle_signal_is_the_hidden_truth_and_marked(carcircle_dataset, tmp_path):
    from dspo_ray.data import load_task_data

    config = tiny_config(carcircle_dataset, stop_after="generation", stage1_oracle=True)
    runner = KeepingRunner()
    result = run_dspo(config, tmp_path / "run", runner=runner)
    assert list(runner.kwargs) == ["diffusion"]  # no discriminator trained
    _, truth = load_task_data(TASK, str(carcircle_dataset), config.split)
    with np.load(tmp_path / "run" / "labels.npz") as labels:
        np.testing.assert_array_equal(labels["safety_signal"], truth.is_safe.astype(float))
    np.testing.assert_array_equal(runner.kwargs["diffusion"]["signals"], truth.is_safe.astype(float))
    assert result["diagnostic/oracle_signal"] == 1 and result["discriminator/auroc"] == 1.0
    assert "stage1/heldout_demo_auroc" not in result  # nothing label-free to select on
    assert result["generation/safety_condition"] == 1.0


def test_oracle_windows_are_real_windows_of_truly_safe_unlabelled_trajectories(
        carcircle_dataset, tmp_path):
    """stage2_oracle: behaviour cloning gets real windows cut from the unlabelled trajectories the
    hidden truth says are safe (none from an unsafe one, none from a demonstration), no
    diffusion model is trained, and the run is marked; generated-window options are refused."""
    from dspo_ray.config import ConfigError
    from dspo_ray.data import load_task_data
    from dspo_ray.dspo.generate import load_generated
    from dspo_ray.dspo.windows import ragged_from_data

    config = tiny_config(carcircle_dataset, stage2_oracle=True, **{"generation.n_windows": 40})
    runner = RecordingRunner()
    result = run_dspo(config, tmp_path / "run", runner=runner)
    assert runner.stages == ["discriminator", "bc"]  # stage 1 still reports; no diffusion model
    assert not (tmp_path / "run" / ARTEFACTS["diffusion"]).exists()
    assert result["diagnostic/oracle_windows"] == 1 and "eval/normalized_cost" in result
    assert "diagnostic/oracle_signal" not in result

    data, truth = load_task_data(TASK, str(carcircle_dataset), config.split)
    trajectories = ragged_from_data(data)
    horizon = config.diffusion.horizon
    windows = load_generated(tmp_path / "run" / ARTEFACTS["generation"])
    assert windows["observations"].shape == (40, horizon, trajectories.observations.shape[1])
    # every window is a run of consecutive real steps of one truly safe unlabelled trajectory
    source = np.repeat(np.arange(len(trajectories)), trajectories.lengths)
    kinds = set()
    for obs, act in zip(windows["observations"], windows["actions"]):
        rows = np.flatnonzero((trajectories.observations == obs[0]).all(1)
                              & (trajectories.actions == act[0]).all(1))
        assert len(rows), "a window that is not cut from the data"
        row = rows[0]
        np.testing.assert_array_equal(trajectories.observations[row:row + horizon], obs)
        np.testing.assert_array_equal(trajectories.actions[row:row + horizon], act)
        kinds.add((bool(truth.is_safe[source[row]]), bool(trajectories.is_demo[source[row]])))
    assert kinds == {(True, False)}
    assert 0 < (truth.is_safe & ~trajectories.is_demo).sum() < (~trajectories.is_demo).sum()
    for generated_only in ({"generation.consistency": "dynamics_rollout"},
                           {"generation.signal_filter_quantile": 0.5},
                           {"generation.anchor": "demonstrations", "diffusion.first_state_given": True}):
        with pytest.raises(ConfigError, match="stage2_oracle"):
            tiny_config(carcircle_dataset, stage2_oracle=True, **generated_only)


def test_signal_filter_keeps_the_windows_the_discriminator_rates_as_safe_as_the_demos(
        carcircle_dataset, tmp_path):
    """generation.signal_filter_quantile: from the same discriminator and diffusion model, only
    the generated windows whose signal reaches the threshold go on, the unfiltered generation's
    own windows first, topped up by more draws; the oracle run (no discriminator) refuses it."""

    from dspo_ray.config import ConfigError
    from dspo_ray.dspo.discriminator import load_discriminator, score_trajectories
    from dspo_ray.dspo.generate import load_generated
    from dspo_ray.data import load_task_data
    from dspo_ray.dspo.windows import ragged_from_data, sample_windows, windows_as_trajectories

    run_dspo(tiny_config(carcircle_dataset, stop_after="generation"), tmp_path / "plain")
    filtered = tmp_path / "filtered"
    copy_trained_stages(tmp_path / "plain", filtered)  # only generation differs
    model = load_discriminator(torch.load(filtered / "discriminator.pt", weights_only=False))
    signal = lambda windows: score_trajectories(model, windows, window=16)  # noqa: E731
    plain = load_generated(tmp_path / "plain" / "generated.npz")
    plain_signal = signal(windows_as_trajectories(plain["observations"], plain["actions"]))
    # the quantile of the demonstrations' window signals (drawn as the pipeline draws them) that
    # puts the threshold amid the plain windows' signals: some pass, some do not
    data, _ = load_task_data(TASK, str(carcircle_dataset), tiny_config(carcircle_dataset).split)
    trajectories = ragged_from_data(data)
    demo_signal = signal(sample_windows(trajectories, trajectories.is_demo, 16, np.random.default_rng(0)))
    quantile = float((demo_signal < np.median(plain_signal)).mean())
    config = tiny_config(carcircle_dataset, stop_after="generation",
                         **{"generation.signal_filter_quantile": quantile,
                            "generation.filter_max_draws": 3})
    runner = RecordingRunner()
    result = run_dspo(config, filtered, runner=runner)
    assert runner.stages == []  # nothing trained again

    kept = load_generated(filtered / "generated.npz")
    threshold, drawn = result["generation/filter_threshold"], result["generation/filter_drawn"]
    first_round = plain["observations"][plain_signal >= threshold]
    assert 0 < len(first_round) < 8 and threshold == pytest.approx(np.quantile(demo_signal, quantile))
    passed = round(result["generation/filter_kept_share"] * drawn)
    assert drawn in (16, 24) and (passed >= 8 or drawn == 24)
    assert len(kept["observations"]) == result["generation/n_windows"] == min(8, passed)
    assert (signal(windows_as_trajectories(kept["observations"], kept["actions"])) >= threshold - 1e-6).all()
    np.testing.assert_array_equal(kept["observations"][:len(first_round)], first_round)
    with pytest.raises(ConfigError, match="signal_filter_quantile"):
        tiny_config(carcircle_dataset, stage1_oracle=True, **{"generation.signal_filter_quantile": 0.5})


def shipped_tasks():
    """Tasks with a shipped dataset, shortest episodes first."""
    from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
    from dspo_ray.tasks import TASKS

    shipped = [spec for spec in TASKS.values()
               if list(SHIPPED_DATASET_DIR.glob(f"{spec.dsrl_filename_prefix}*{PACK_SUFFIX}"))]
    return [spec.name for spec in sorted(shipped, key=lambda spec: spec.max_episode_steps)]


@pytest.mark.parametrize("task", shipped_tasks()[:1] or [pytest.param(
    "none", marks=pytest.mark.skip(reason="no shipped dataset in datasets/ yet"))])
def test_end_to_end_on_a_shipped_dataset(task, tmp_path):
    """The paper's split (15 demonstrations + Table 3's unlabelled count) of a shipped dataset, tiny
    training budgets: DSPO produces an evaluated policy."""
    from dspo_ray.data import task_dataset_file
    from dspo_ray.data.shipping import SHIPPED_DATASET_DIR
    from dspo_ray.provenance import dataset_sha256

    config = profile_config("quick", task=task, dataset=str(SHIPPED_DATASET_DIR), eval_episodes=2,
                            eval_workers=1, **{"discriminator.steps": 4, "diffusion.steps": 4,
                                               "generation.n_windows": 4, "bc.steps": 20})
    result = run_dspo(config, tmp_path / "run")
    assert result["data/n_safe_demos"] == 15 and result["eval/episodes"] == 2
    read = task_dataset_file(task, SHIPPED_DATASET_DIR)  # the pack, unpacked once per machine
    assert (result["data/file"], result["data/sha256"]) == (read.name, dataset_sha256(read)[:16])
    assert np.isfinite(result["eval/normalized_reward"]) and np.isfinite(result["discriminator/recall"])
    assert load_policy(tmp_path / "run" / "policy.pt") is not None


@pytest.mark.parametrize("anchor", ["demonstrations", "unlabelled"])
def test_anchored_windows_start_at_states_of_the_learners_data(carcircle_dataset, tmp_path, anchor):
    """generation.anchor: every generated window's first state is a state of the chosen part of
    the learner's data (demonstrations or unlabelled trajectories), none of the other part."""
    from dspo_ray.data import load_task_data
    from dspo_ray.dspo.generate import load_generated

    config = tiny_config(carcircle_dataset, stop_after="generation", stage1_oracle=True,
                         **{"diffusion.first_state_given": True, "generation.anchor": anchor})
    run_dspo(config, tmp_path / "run")
    data, _ = load_task_data(TASK, str(carcircle_dataset), config.split)
    demos = np.concatenate([t.observations for t in data.safe_demos])
    unlabelled = np.concatenate([t.observations for t in data.unlabelled])
    chosen, other = (demos, unlabelled) if anchor == "demonstrations" else (unlabelled, demos)
    first = load_generated(tmp_path / "run" / "generated.npz")["observations"][:, 0]

    def found_in(states):  # float32 round trip through the model's normalisation
        return np.isclose(first[:, None], states[None], atol=1e-4).all(-1).any(1)

    assert found_in(chosen).all() and not found_in(other).any()


def test_dynamics_rollout_keeps_each_windows_first_state_and_actions_and_follows_the_model(
        carcircle_dataset, tmp_path):
    """generation.consistency: dynamics_rollout, from the same stage-1 and diffusion artefacts as
    a plain run: the same first states and actions, the later states a dynamics model's (fitted
    on the learner's data with the run's seed), within the data's state range."""

    from dspo_ray.data import load_task_data
    from dspo_ray.dspo.dynamics import fit_dynamics, transitions, window_errors
    from dspo_ray.dspo.generate import load_generated
    from dspo_ray.dspo.windows import ragged_from_data

    run_dspo(tiny_config(carcircle_dataset, stop_after="generation"), tmp_path / "plain")
    rolled_dir = tmp_path / "rolled"
    copy_trained_stages(tmp_path / "plain", rolled_dir)  # only generation differs
    config = tiny_config(carcircle_dataset, stop_after="generation",
                         **{"generation.consistency": "dynamics_rollout", "generation.dynamics_steps": 30})
    runner = RecordingRunner()
    result = run_dspo(config, rolled_dir, runner=runner)
    assert runner.stages == []  # nothing trained again

    plain = load_generated(tmp_path / "plain" / "generated.npz")
    rolled = load_generated(rolled_dir / "generated.npz")
    np.testing.assert_array_equal(rolled["actions"], plain["actions"])
    np.testing.assert_array_equal(rolled["observations"][:, 0], plain["observations"][:, 0])
    assert not np.allclose(rolled["observations"][:, 1:], plain["observations"][:, 1:])
    assert result["generation/rollout_state_change"] > 0
    data, _ = load_task_data(TASK, str(carcircle_dataset), config.split)
    trajectories = ragged_from_data(data)
    low, high = trajectories.observations.min(0), trajectories.observations.max(0)
    assert (rolled["observations"] >= low - 1e-5).all() and (rolled["observations"] <= high + 1e-5).all()
    model = fit_dynamics(*transitions(trajectories, np.ones(len(trajectories), bool)), steps=30,
                         seed=config.seed)
    inside = ((rolled["observations"] > low + 1e-4) & (rolled["observations"] < high - 1e-4)).all((1, 2))
    assert inside.any()  # the windows no state bound touched follow the model step after step
    assert window_errors(model, rolled["observations"][inside], rolled["actions"][inside]).max() < 1e-3
    assert window_errors(model, plain["observations"], plain["actions"]).min() > 1e-2


def test_inverse_dynamics_keeps_the_generated_states_and_infers_their_actions(carcircle_dataset, tmp_path):
    """generation.consistency: inverse_dynamics: the plain run's generated states (each window
    but its last step), the actions an inverse model fitted on the learner's data with the run's
    seed gives for each step, within the action bounds."""

    from dspo_ray.data import load_task_data
    from dspo_ray.dspo.dynamics import InverseDynamics, fit_dynamics, relabel_actions, transitions
    from dspo_ray.dspo.generate import load_generated
    from dspo_ray.dspo.windows import ragged_from_data
    from dspo_ray.tasks import action_bounds

    run_dspo(tiny_config(carcircle_dataset, stop_after="generation"), tmp_path / "plain")
    relabelled_dir = tmp_path / "relabelled"
    copy_trained_stages(tmp_path / "plain", relabelled_dir)
    config = tiny_config(carcircle_dataset, stop_after="generation",
                         **{"generation.consistency": "inverse_dynamics", "generation.dynamics_steps": 30})
    result = run_dspo(config, relabelled_dir)
    plain = load_generated(tmp_path / "plain" / "generated.npz")
    relabelled = load_generated(relabelled_dir / "generated.npz")
    np.testing.assert_array_equal(relabelled["observations"], plain["observations"][:, :-1])
    data, _ = load_task_data(TASK, str(carcircle_dataset), config.split)
    trajectories = ragged_from_data(data)
    low, high = action_bounds(TASK)
    model = fit_dynamics(*transitions(trajectories, np.ones(len(trajectories), bool)), steps=30,
                         seed=config.seed, model_class=InverseDynamics)
    np.testing.assert_allclose(relabelled["actions"],
                               relabel_actions(model, plain["observations"], low, high), atol=1e-6)
    assert not np.allclose(relabelled["actions"], plain["actions"][:, :-1])
    assert result["generation/relabel_action_change"] > 0 and result["generation/n_windows"] == 8
