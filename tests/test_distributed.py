"""The Ray layer on a real local Ray: config validation (no Ray), a TorchTrainer stage on 2 DDP
workers, a tiny sweep end to end (DSPO when a dataset is available, always the regression method),
a trial that fails once and is retried.

Ray runs with RAY_TMPDIR in a short folder of its own under /tmp and HOME shared by the process,
bound to 127.0.0.1; it is shut down by the fixture that started it (never `ray stop`).
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

from dspo_ray.config import ConfigError  # noqa: E402
from dspo_ray.distributed.config import (auto_concurrency, load_sweep_config,  # noqa: E402
                                         sweep_config_from_dict)

LINEAR = "distributed_helpers:linear_method"


def tiny_linear_config(tmp: Path, **extra) -> dict:
    cfg = {
        "name": "tiny", "tasks": ["CarCircle"], "seeds": [0], "methods": [LINEAR],
        "num_samples": 2,
        "search": {"seed": 0, "n_startup_trials": 1,
                   "space": {LINEAR: {"lr": {"type": "loguniform", "low": 0.02, "high": 0.5}}}},
        "overrides": {LINEAR: {"steps": 20}},
        "train": {"num_workers": 2, "cpus_per_worker": 1, "max_failures": 0},
        "trial": {"cpus": 0, "memory_mb": 64, "max_failures": 1},
        "scheduler": {"type": "fifo"},
        "storage": str(tmp / "results"),
    }
    cfg.update(extra)
    return cfg


# ----------------------------------------------------------------------- config, no Ray needed

def run_cli(*args, env=None, timeout=120):
    env = {**os.environ, **(env or {})}
    env["PYTHONPATH"] = f"{TESTS}:{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, str(REPO / "experiments" / "sweep.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.parametrize("mutate, key", [
    (lambda c: c.update(num_sample=3), "num_sample"),
    (lambda c: c["train"].update(num_worker=2), "train.num_worker"),
    (lambda c: c.update(tasks=["CarCircle", "CarCirlce"]), "tasks[1]"),
    (lambda c: c["search"]["space"][LINEAR].update(lr={"type": "gaussian", "low": 0, "high": 1}),
     "search.space.distributed_helpers:linear_method.lr.type"),
    (lambda c: c["search"]["space"][LINEAR].update(lr={"type": "uniform", "low": 1, "high": 0}),
     "search.space.distributed_helpers:linear_method.lr"),
    (lambda c: c["overrides"].update(dspo={"profile": "quick"}), "overrides.dspo"),
])
def test_bad_config_names_the_key(tmp_path, mutate, key):
    cfg = tiny_linear_config(tmp_path)
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        sweep_config_from_dict(cfg)
    assert str(e.value).startswith(key), str(e.value)


def test_bad_dspo_key_or_bound_is_caught_against_dspo_config(tmp_path):
    cfg = yaml.safe_load((REPO / "experiments/configs/quick.yaml").read_text())
    cfg["search"]["space"]["dspo"]["discriminator.vclub_cof"] = {
        "type": "uniform", "low": 0.1, "high": 0.2}
    with pytest.raises(ConfigError, match=r"^search\.space\.dspo\.discriminator\.vclub_cof"):
        sweep_config_from_dict(cfg)
    cfg = yaml.safe_load((REPO / "experiments/configs/quick.yaml").read_text())
    # safety_condition is a signal in [0, 1]: the upper bound 1.5 is out of DSPOConfig's range
    cfg["search"]["space"]["dspo"]["generation.safety_condition"]["high"] = 1.5
    with pytest.raises(ConfigError, match=r"^search\.space\.dspo\.generation\.safety_condition"):
        sweep_config_from_dict(cfg)


def test_cli_bad_yaml_fails_before_any_trial(tmp_path):
    bad = tiny_linear_config(tmp_path)
    bad["scheduler"] = {"type": "asha", "grace_priod": 1}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    start = time.perf_counter()
    out = run_cli("--config", str(path))  # not --check: a real run must refuse before Ray starts
    assert out.returncode == 2, out.stdout + out.stderr
    assert "scheduler.grace_priod" in out.stderr
    assert time.perf_counter() - start < 30
    assert not (tmp_path / "results").exists()


def test_shipped_configs_are_valid_and_help_documents_every_option():
    for name in ("quick", "paper", "table1_quick"):
        config = load_sweep_config(REPO / f"experiments/configs/{name}.yaml")
        assert config.total_trials() >= 1
    paper = load_sweep_config(REPO / "experiments/configs/paper.yaml")
    assert len(paper.tasks) == 23 and len(paper.seeds) == 5
    # the quick Table 1: every method of the paper's Table 1 on every shipped dataset (and
    # datasets built on demand), 3 seeds
    from dspo_ray.baselines import METHODS
    from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
    from dspo_ray.tasks import get_task

    table1 = load_sweep_config(REPO / "experiments/configs/table1_quick.yaml")
    assert set(table1.methods) == {"dspo", *METHODS} and len(table1.seeds) == 3
    packs = {p.name for p in SHIPPED_DATASET_DIR.glob(f"*{PACK_SUFFIX}")}
    from dspo_ray.data.recipes import RECIPES

    shipped = {t for t in table1.tasks
               if any(p.startswith(get_task(t).dsrl_filename_prefix) for p in packs)}
    assert len(shipped) == len(packs)  # every shipped dataset is in it
    assert all(t in shipped or t in RECIPES for t in table1.tasks)  # the others can be built
    out = run_cli("--help")
    assert out.returncode == 0
    for option in ("--config", "--address", "--resume", "--storage", "--name", "--workdir",
                   "--task", "--seed", "--method", "--num-samples", "--max-concurrent",
                   "--num-cpus", "--check"):
        assert option in out.stdout


def test_objective_ranks_every_safe_result_above_every_unsafe_one():
    from dspo_ray.analysis.results import objective

    assert objective(0.7, 0.5) == pytest.approx(0.7)
    assert objective(0.1, 1.0) > objective(5.0, 1.01)          # safe beats unsafe
    assert objective(-0.5, 0.9) > objective(0.9, 1.5)
    assert objective(0.3, 2.0) > objective(0.9, 3.0)           # less costly unsafe ranks higher
    assert objective(0.5, float("nan")) == -np.inf


def test_wandb_is_optional_and_off_by_default(tmp_path):
    import importlib.util

    from dspo_ray.distributed.sweep import GrowingCSVLoggerCallback, logger_callbacks

    assert [type(c) for c in logger_callbacks(sweep_config_from_dict(tiny_linear_config(tmp_path)))
            ] == [GrowingCSVLoggerCallback]
    with_wandb = tiny_linear_config(tmp_path, wandb={"enabled": True})
    if importlib.util.find_spec("wandb") is None:
        with pytest.raises(ConfigError, match=r"^wandb.enabled: the wandb package is not installed"):
            sweep_config_from_dict(with_wandb)
    else:
        callbacks = logger_callbacks(sweep_config_from_dict(with_wandb))
        assert type(callbacks[-1]).__name__ == "WandbLoggerCallback"


def test_progress_table_shows_what_a_user_watches():
    from dspo_ray.distributed.sweep import progress_reporter
    from dspo_ray.metrics import LABEL_FREE_STAGE1_METRIC

    reporter = progress_reporter()
    assert list(reporter._metric_columns) == [
        "stage", "progress", "train/step", LABEL_FREE_STAGE1_METRIC, "objective",
        "eval/normalized_reward", "eval/normalized_cost"]
    assert list(reporter._parameter_columns) == ["method", "task", "seed"]


def test_auto_concurrency_from_cluster_resources(tmp_path):
    c = sweep_config_from_dict(tiny_linear_config(tmp_path))
    assert auto_concurrency(c, {"CPU": 2.0}) == 1            # 0 + 2 x 1 CPU per trial
    assert auto_concurrency(c, {"CPU": 9.0}) == 4
    gpu = sweep_config_from_dict(tiny_linear_config(
        tmp_path, train={"num_workers": 1, "use_gpu": True}, trial={"cpus": 1}))
    assert auto_concurrency(gpu, {"CPU": 64.0, "GPU": 4.0}) == 4


def test_searcher_keeps_its_studies_in_the_sweep_database_across_a_lost_driver(tmp_path):
    """Each cell's study is an Optuna study in <storage>/<name>/optuna.db; a searcher restored
    from an older checkpoint (the driver was killed) reopens it, fails the trial asked after that
    checkpoint and goes on."""
    import optuna
    from optuna.trial import TrialState

    from dspo_ray.distributed.sweep import CellGridSearcher
    from dspo_ray.io import ArtefactError

    config = sweep_config_from_dict(tiny_linear_config(tmp_path, seeds=[0, 1], num_samples=3))
    assert config.optuna_db() == tmp_path / "results" / "tiny" / "optuna.db"
    searcher = CellGridSearcher(config)
    first = [searcher.suggest(str(i)) for i in range(4)]  # groups 0 and 1, two seeds each
    searcher.on_trial_complete("0", {"objective": 1.0})
    searcher.on_trial_complete("1", {"objective": 3.0})
    checkpoint = tmp_path / "searcher.pkl"
    searcher.save(str(checkpoint))
    searcher.suggest("4")  # group 2 asked, then the driver is lost before the next checkpoint

    resumed = pickle.loads(pickle.dumps(CellGridSearcher(config)))  # as Tune rebuilds it
    resumed.restore(str(checkpoint))
    resumed.on_trial_complete("2", {"objective": 0.5})
    resumed.on_trial_complete("3", None, error=True)  # mean over the seeds that finished
    again = resumed.suggest("4")

    study = optuna.load_study(study_name=f"{LINEAR}/CarCircle",
                              storage=f"sqlite:///{tmp_path}/results/tiny/optuna.db")
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.COMPLETE,
                                         TrialState.FAIL, TrialState.RUNNING]
    assert [t.value for t in trials[:2]] == [2.0, 0.5]
    assert [t.user_attrs["group"] for t in trials] == [f"{LINEAR}/CarCircle/{k}"
                                                       for k in (0, 1, 2, 2)]
    assert [trials[0].params, trials[1].params] == [first[0]["params"], first[2]["params"]]
    assert again["group"] == f"{LINEAR}/CarCircle/2" and again["params"] == trials[3].params
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    older = CellGridSearcher(config)
    older.studies = {}  # how an older dspo-ray checkpointed its studies: refused by name
    with pytest.raises(ArtefactError, match="older dspo-ray"):
        pickle.loads(pickle.dumps(older))


# ----------------------------------------------------------------------------- a real local Ray

@pytest.fixture(scope="module")
def local_ray():
    # short, under /tmp: Ray's socket paths under RAY_TMPDIR must stay below 108 bytes, and
    # pytest's own temp folders are longer under pytest-xdist (.../popen-gw1/...)
    root = Path(tempfile.mkdtemp(prefix="dspo-rt-", dir="/tmp"))
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "HOME", "PYTHONPATH")}
    os.environ["RAY_TMPDIR"] = str(root)
    from distributed_helpers import ray_home

    os.environ["HOME"] = ray_home()
    # the workers import the test helpers (Ray workers inherit the raylet's environment)
    os.environ["PYTHONPATH"] = f"{TESTS}:{REPO}:{saved['PYTHONPATH'] or ''}"
    from dspo_ray.distributed.sweep import start_ray

    import ray

    assert start_ray(None, num_cpus=2)
    yield root
    ray.shutdown()
    shutil.rmtree(root, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_torch_trainer_stage_trains_on_two_workers(local_ray, tmp_path):
    from distributed_helpers import TRUE_W, regression_data, train_linear
    from dspo_ray.distributed.train_runner import RayTrainRunner

    x, y = regression_data()
    out = RayTrainRunner(num_workers=2).run("fit", train_linear, tmp_path, x=x, y=y, steps=60,
                                            lr=0.1, marker_dir=tmp_path / "markers")
    assert out["world_size"] == 2
    np.testing.assert_allclose(out["weight"], TRUE_W, atol=0.02)
    assert abs(out["bias"] - 0.3) < 0.02
    # both ranks ran, in processes other than this one (DDP kept them in step: same weights)
    assert {p.name for p in (tmp_path / "markers").glob("rank*.node")} == {"rank0.node",
                                                                           "rank1.node"}
    assert out["pid"] != os.getpid()


def test_one_worker_group_runs_stages_in_turn_and_resumes_the_interrupted_one(local_ray,
                                                                             tmp_path):
    from distributed_helpers import TRUE_W, regression_data, two_linear_stages
    from dspo_ray.distributed.train_runner import RayTrainRunner

    x, y = regression_data()
    markers = tmp_path / "markers"
    out = RayTrainRunner(num_workers=2, max_failures=1).run_group(
        "two", two_linear_stages, tmp_path, x=x, y=y, marker_dir=markers)
    assert (markers / "failed").exists()  # the group was restarted once
    assert out["first"]["world_size"] == out["second"]["world_size"] == 2
    np.testing.assert_allclose(out["second"]["weight"], TRUE_W, atol=0.02)
    # the finished first stage was skipped; the second resumed from its own step-30 checkpoint,
    # not from the first stage's (step 40)
    assert out["first"]["resumed_from"] == 0 and out["second"]["resumed_from"] == 30
    starts = sorted(p.name.rsplit("-", 1)[0] for p in markers.glob("start-rank*"))
    assert starts == ["start-rank0-step0", "start-rank0-step30", "start-rank1-step0",
                      "start-rank1-step30"]


def test_a_worker_groups_work_files_reach_the_trials_folder(tmp_path):
    """On a cluster without a shared filesystem the group's rank 0 writes the artefacts on its
    node: they come back with the group's return value and the trial writes what it lacks."""
    from dspo_ray.distributed.sweep import _dspo_work_files, _write_work_files

    names = _dspo_work_files()
    assert names.index("policy.pt.metrics.json") < names.index("policy.pt")
    files = {"config.json": b"{}", "discriminator.pt": b"d", "discriminator.pt.metrics.json": b"m"}
    trial = tmp_path / "trial"
    trial.mkdir()
    (trial / "config.json").write_bytes(b"{}")
    before = (trial / "config.json").stat().st_mtime_ns
    _write_work_files(trial, files)
    assert {p.name: p.read_bytes() for p in trial.iterdir()} == files
    assert (trial / "config.json").stat().st_mtime_ns == before  # the same: left alone


def test_a_trial_that_raises_is_retried_and_completes(local_ray, tmp_path):
    from dspo_ray.distributed.sweep import run_sweep

    cfg = tiny_linear_config(tmp_path, name="retry", num_samples=1,
                             overrides={LINEAR: {"steps": 10, "fail_first": True}},
                             train={"num_workers": 0})
    result = run_sweep(sweep_config_from_dict(cfg))
    t = result.trials
    assert len(t) == 1 and t.loc[0, "status"] == "finished" and t.loc[0, "retries"] == 1


def test_a_relative_storage_puts_work_folders_where_the_summary_says(local_ray, tmp_path,
                                                                    monkeypatch):
    from dspo_ray.distributed.sweep import run_sweep

    monkeypatch.chdir(tmp_path)  # trials run in Tune's folders, not here: the path must travel
    cfg = tiny_linear_config(tmp_path, name="relative", num_samples=1, storage="rel-results",
                             train={"num_workers": 0})
    result = run_sweep(sweep_config_from_dict(cfg))
    assert result.work_root == tmp_path / "rel-results" / "relative" / "work"
    assert len(list(result.work_root.iterdir())) == 1  # the trial's work folder


def test_each_cells_study_numbers_its_own_trials_across_a_lost_driver(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from dspo_ray.distributed.sweep import CellGridSearcher

    config = sweep_config_from_dict(tiny_linear_config(tmp_path, tasks=["CarCircle", "DroneRun"],
                                                       num_samples=1))
    searcher = CellGridSearcher(config)
    assert searcher.suggest("0")["group"] == f"{LINEAR}/CarCircle/0"  # CarCircle's trial 0
    checkpoint = tmp_path / "searcher.pkl"
    searcher.save(str(checkpoint))
    searcher.suggest("1")  # DroneRun's trial 0, lost with the driver

    resumed = pickle.loads(pickle.dumps(CellGridSearcher(config)))
    resumed.restore(str(checkpoint))
    assert resumed.suggest("1")["group"] == f"{LINEAR}/DroneRun/0"  # while CarCircle's 0 waits
    resumed.on_trial_complete("0", {"objective": 1.0})
    resumed.on_trial_complete("1", {"objective": 2.0})
    states = {task: [t.state for t in optuna.load_study(
        study_name=f"{LINEAR}/{task}", storage=config.optuna_storage_url()).trials]
        for task in ("CarCircle", "DroneRun")}
    assert states == {"CarCircle": [TrialState.COMPLETE],
                      "DroneRun": [TrialState.FAIL, TrialState.COMPLETE]}


def test_a_sweeps_studies_load_with_optuna_load_study(local_ray, tmp_path):
    import optuna

    from dspo_ray.distributed.sweep import format_summary, run_sweep

    cfg = tiny_linear_config(tmp_path, name="studied", num_samples=3, train={"num_workers": 0})
    result = run_sweep(sweep_config_from_dict(cfg))
    study = optuna.load_study(study_name=f"{LINEAR}/CarCircle",
                              storage=f"sqlite:///{tmp_path}/results/studied/optuna.db")
    t = result.trials.set_index("group")
    assert len(study.trials) == 3 == len(t)
    for trial in study.trials:  # the study holds what the sweep ran, with the objective it saw
        row = t.loc[trial.user_attrs["group"]]
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.params["lr"] == pytest.approx(row["params/lr"])
        assert trial.value == pytest.approx(row["objective"])
    assert study.best_value == pytest.approx(t["objective"].max())
    assert result.optuna_storage == f"sqlite:///{tmp_path}/results/studied/optuna.db"
    assert result.optuna_storage in format_summary(result)


# ------------------------------------------------------------------------- DSPO through the sweep

def test_tiny_dspo_sweep_trains_stages_on_ray_train_and_shares_them_through_the_cache(
        local_ray, carcircle_dataset, tmp_path):
    """The quick sweep's settings (ASHA on the label-free stage-1 metric, Optuna), shrunk: two
    configurations that differ only in a generation setting, one after the other. The first
    trains its three stages on a Ray Train worker group; the second copies stages 1-3 from the
    sweep's stage cache (through its own worker group) and trains generation and BC only. One
    sweep for both checks: a DSPO sweep on Ray is the suite's slowest kind of test."""
    from dspo_ray.distributed.sweep import format_summary, run_sweep

    cfg = yaml.safe_load((REPO / "experiments/configs/quick.yaml").read_text())
    cfg.update(name="tiny-dspo", tasks=["CarCircle"], num_samples=2, eval_episodes=2,
               max_concurrent_trials=1, dataset_dir=str(carcircle_dataset),
               storage=str(tmp_path / "results"))
    cfg["search"]["n_startup_trials"] = 2
    cfg["search"]["space"] = {"dspo": {"generation.safety_condition":
                                       {"type": "uniform", "low": 0.5, "high": 1.0}}}
    cfg["overrides"]["dspo"].update({
        "split.n_safe": 5, "split.n_unlabelled": 30, "eval_workers": 1,
        "discriminator.steps": 6, "discriminator.log_every": 3, "discriminator.checkpoint_every": 3,
        "diffusion.steps": 10, "diffusion.log_every": 5, "diffusion.checkpoint_every": 5,
        "generation.n_windows": 8, "bc.steps": 40, "bc.log_every": 20, "bc.checkpoint_every": 20})
    config = sweep_config_from_dict(cfg)
    assert config.stage_cache and config.stage_cache_dir() == config.work_root() / "stage_cache"
    result = run_sweep(config)
    t = result.trials
    # ASHA lets the second run on: its stage-1 metric is the first's (the same cached model)
    assert len(t) == 2 and (t["status"] == "finished").all()
    assert t["params/generation.safety_condition"].nunique() == 2  # two Optuna proposals
    assert t["eval/normalized_cost"].notna().all() and t["progress"].eq(6).all()
    exp = Path(result.experiment_path)
    summary = pd.read_csv(exp / "summary.csv")
    assert list(summary["task"]) == ["CarCircle"] and summary.loc[0, "seeds"] == 1
    assert summary.loc[0, "objective"] == pytest.approx(t["objective"].max())
    assert bool(summary.loc[0, "safe"]) == (summary.loc[0, "cost_mean"] <= 1)
    # ASHA ends an evaluated trial at its max_t rung: the tables still count it (one reader)
    from dspo_ray.analysis import load_results, table1

    trials, reports = load_results(str(exp))
    assert (trials["status"] == "finished").sum() == 2
    assert "no result" not in table1(trials, "md")
    for trial_dir in exp.glob("run_trial_*"):
        assert (trial_dir / "result.json").exists() and (trial_dir / "params.json").exists()
    # the training stages ran on one Ray Train worker group per trial (its run's checkpoints
    # under the experiment)
    for trial_id in t["trial_id"]:
        assert [p.name for p in (exp / "train").glob(f"{trial_id}-*")] == [f"{trial_id}-dspo"]
        work = next(result.work_root.glob(f"*-{trial_id}"))
        assert (work / "policy.pt").exists() and (work / "result.json").exists()
    # the stages' losses reached Tune from the Ray Train workers, every log_every steps; only the
    # trial that trained stage 1 reports its steps, the other copied it
    discriminator_steps = []
    for trial, r in reports.groupby("trial"):
        assert r["progress"].is_monotonic_increasing  # ASHA's time attribute
        rows = r[r["train/step"].notna()]
        discriminator_steps.append(list(rows.loc[rows["stage"] == "discriminator", "train/step"]))
        assert rows["objective"].isna().all()  # never a score for ASHA or Optuna
        assert list(rows.loc[rows["stage"] == "bc", "train/step"]) == [20, 40]
    assert sorted(discriminator_steps) == [[], [3, 6]]
    # the stage cache: stages 1-3 once, generation and BC per trial; the copies are the same files
    entries = sorted(p.name.split("-")[0] for p in config.stage_cache_dir().iterdir())
    assert entries == ["bc", "bc", "diffusion", "discriminator", "generation", "generation",
                       "labels"]
    first, second = (next(result.work_root.glob(f"*-{trial_id}")) for trial_id in t["trial_id"])
    for name in ("discriminator.pt", "labels.npz", "diffusion.pt", "diffusion.pt.metrics.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert (first / "generated.npz").read_bytes() != (second / "generated.npz").read_bytes()
    assert sorted(t["time/diffusion_s"]) == [t["time/diffusion_s"].iloc[0]] * 2  # as trained
    # the best result carries the trained policy as its checkpoint; the summary names its file
    from ray import tune
    from dspo_ray.distributed.sweep import run_trial
    from dspo_ray.policies import check_policy_fits
    from dspo_ray.saved_policies import load_policy
    from dspo_ray.tasks import get_task

    best = tune.Tuner.restore(str(exp), trainable=run_trial).get_results().get_best_result()
    assert best.metrics["evaluated_objective"] == pytest.approx(t["objective"].max())
    policy = Path(best.checkpoint.path) / "policy.pt"
    task = get_task("CarCircle")
    check_policy_fits(load_policy(policy), task.obs_dim, task.act_dim, task.name)
    summary_text = format_summary(result)
    assert "CarCircle" in summary_text and str(policy) in summary_text


def test_methods_on_the_command_line_pick_their_sections_of_the_file():
    from dspo_ray.distributed.config import load_sweep_config

    config = load_sweep_config(REPO / "experiments/configs/table1_quick.yaml",
                               methods=["dspo", "bc_safe"], tasks=["DroneRun"])
    assert config.methods == ["dspo", "bc_safe"] or tuple(config.methods) == ("dspo", "bc_safe")
    assert set(config.overrides) <= {"dspo", "bc_safe"} and "dspo" in config.overrides
