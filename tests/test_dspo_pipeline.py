"""DSPO end to end on a small real CarCircle dataset (recorded in the simulator), and stage resume."""

import json

import numpy as np
import pytest
import torch

from dspo_ray.data import find_dataset
from dspo_ray.dspo.config import profile_config
from dspo_ray.dspo.pipeline import ARTEFACTS, run_dspo
from dspo_ray.policies import load_policy
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


class RecordingRunner(LocalRunner):
    def __init__(self):
        super().__init__()
        self.stages = []

    def run(self, stage, train_fn, workdir, **kwargs):
        self.stages.append(stage)
        return super().run(stage, train_fn, workdir, **kwargs)


def test_end_to_end_then_resume_skips_finished_stages(carcircle_dataset, tmp_path):
    assert find_dataset(TASK, carcircle_dataset).exists()
    config = tiny_config(carcircle_dataset)
    reports, runner = [], RecordingRunner()
    result = run_dspo(config, tmp_path / "run", runner=runner, report=reports.append)

    assert runner.stages == ["discriminator", "diffusion", "bc"]
    assert [r["stage"] for r in reports] == ["discriminator", "labels", "diffusion", "generation",
                                             "bc", "evaluation"]
    assert "discriminator/recall" in reports[1] and "eval/normalized_reward" not in reports[1]
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
        min_demo_signal = labels["safety_signal"][:5].min()
    with np.load(run / "generated.npz") as gen:
        assert gen["observations"].shape == (8, 16, 8) and gen["actions"].shape == (8, 16, 2)
        assert np.allclose(gen["safety_condition"], min_demo_signal)
    policy = load_policy(run / "policy.pt")
    assert policy.act(np.zeros(8, np.float32)).shape == (2,)
    assert json.loads((run / "result.json").read_text()) == pytest.approx(result)

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
    assert run_dspo(config, run, runner=runner3) == pytest.approx(result2) and runner3.stages == []
    # resuming with other settings would mix two configs' artefacts: refused, naming the setting
    with pytest.raises(ValueError, match="discriminator"):
        run_dspo(tiny_config(carcircle_dataset, **{"discriminator.vclub_coef": 0.5}), run)


def shipped_tasks():
    """Tasks with a shipped dataset, shortest episodes first."""
    from dspo_ray.data.dsrl import PACK_SUFFIX, SHIPPED_DATASET_DIR
    from dspo_ray.tasks import TASKS

    shipped = [spec for spec in TASKS.values()
               if list(SHIPPED_DATASET_DIR.glob(f"{spec.dsrl_filename_prefix}*{PACK_SUFFIX}"))]
    return [spec.name for spec in sorted(shipped, key=lambda spec: spec.max_episode_steps)]


@pytest.mark.parametrize("task", shipped_tasks()[:1] or [pytest.param(
    "none", marks=pytest.mark.skip(reason="no shipped dataset in datasets/ yet"))])
def test_end_to_end_on_a_shipped_dataset(task, tmp_path):
    """The paper's split (15 demonstrations + Table 3's unlabelled count) of a shipped dataset, tiny
    training budgets: DSPO produces an evaluated policy."""
    from dspo_ray.data.dsrl import SHIPPED_DATASET_DIR

    config = profile_config("quick", task=task, dataset=str(SHIPPED_DATASET_DIR), eval_episodes=2,
                            eval_workers=1, **{"discriminator.steps": 4, "diffusion.steps": 4,
                                               "generation.n_windows": 4, "bc.steps": 20})
    result = run_dspo(config, tmp_path / "run")
    assert result["data/n_safe_demos"] == 15 and result["eval/episodes"] == 2
    assert np.isfinite(result["eval/normalized_reward"]) and np.isfinite(result["discriminator/recall"])
    assert load_policy(tmp_path / "run" / "policy.pt") is not None
