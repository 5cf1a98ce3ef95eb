"""Issue 11: every bad input gets a clear answer.

One table of command lines, one case per defect: each runs a real entry point and asserts the exit
status, the key words of its one-line message, that no traceback is printed and that nothing is
left behind. The scripts run in this process through their real ``__main__`` path (runpy), so
the imports are paid once; one case also runs as a real process. Every case fails before any
training. A few direct checks follow the table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dspo_ray.data import dsrl_filename, write_dsrl
from dspo_ray.data.trajectory import CostedTrajectory

REPO = Path(__file__).resolve().parents[1]
TASK = "CarCircle"  # obs 8, act 2, cost limit 10


def synthetic_trajectories(n: int = 30, length: int = 60, seed: int = 0) -> list[CostedTrajectory]:
    """Random CarCircle-shaped episodes, every other one safe (cost return 0) or not (length)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        obs = rng.normal(size=(length + 1, 8)).astype(np.float32)
        timeouts = np.zeros(length, bool)
        timeouts[-1] = True
        out.append(CostedTrajectory(
            observations=obs[:-1], next_observations=obs[1:],
            actions=rng.uniform(-1, 1, (length, 2)).astype(np.float32),
            rewards=rng.uniform(0, 1, length).astype(np.float32) + (i % 2),
            terminals=np.zeros(length, bool), timeouts=timeouts,
            costs=np.full(length, float(i % 2), np.float32)))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Inputs shared by the cases: a good small dataset, a damaged one, policy files, YAMLs."""
    root = tmp_path_factory.mktemp("inputs")
    good = root / "good"
    write_dsrl(good / dsrl_filename(TASK, 30), synthetic_trajectories())
    ragged = root / "ragged"
    ragged.mkdir()
    with h5py.File(ragged / dsrl_filename(TASK, 5), "w") as f:  # next_observations one row short
        shapes = dict(observations=(10, 8), next_observations=(9, 8), actions=(10, 2),
                      rewards=(10,), costs=(10,), terminals=(10,), timeouts=(10,))
        for key, shape in shapes.items():
            f[key] = np.ones(shape)
    (root / "empty").mkdir()
    from dspo_ray.policies import MLPPolicy, save_policy

    save_policy(root / "carcircle_policy.pt", MLPPolicy(8, 2, (4,)))
    (root / "junk.pt").write_bytes(b"this is not a policy")
    (root / "no_policy_here").mkdir()
    (root / "bad_syntax.yaml").write_text("tasks: [DroneRun\n")
    (root / "empty.yaml").write_text("# nothing but a comment\n")
    (root / "bad_overrides.yaml").write_text(
        "methods: [bc_safe]\ntasks: [CarCircle]\noverrides: {bc_safe: {steps: -3, batch_size: 0}}\n")
    (root / "ragged_sweep.yaml").write_text(
        f"methods: [bc_safe]\ntasks: [CarCircle]\ndataset_dir: {ragged}\n")
    (root / "missing_sweep.yaml").write_text(
        f"methods: [bc_safe]\ntasks: [CarCircle]\ndataset_dir: {root / 'empty'}\n")
    return {"root": root, "good": good, "ragged": ragged}


def write_run_config(run: Path, argv: list[str]) -> None:
    """The config.json that ``dspo.py argv`` would write (so a rerun is the same run)."""
    from dspo_ray.config import to_dict
    from dspo_ray.dspo.config import load_dspo_config

    overrides = {}
    for flag, key in (("--task", "task"), ("--profile", "profile"), ("--dataset", "dataset")):
        if flag in argv:
            overrides[key] = argv[argv.index(flag) + 1]
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(to_dict(load_dspo_config(None, **overrides))))


def corrupt_run(run: Path, argv: list[str]) -> None:
    """A run folder whose stage artefacts were truncated (a full disk, a copy cut short)."""
    write_run_config(run, argv)
    for name in ("discriminator.pt", "labels.npz", "discriminator.in-progress.pt", "result.json"):
        (run / name).write_bytes(b"PK\x03\x04 truncated")


def corrupt_config(run: Path, argv: list[str]) -> None:
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"task": "CarCi')


T, E, S = "experiments/train.py", "experiments/evaluate.py", "experiments/sweep.py"
D = "experiments/dspo.py"
# (id, script, arguments, exit status, words the message must hold, paths that must not exist
#  afterwards, setup(run folder, arguments) or None). {x} is data[x]; {out} is a fresh path.
CASES = [
    # 2. every numeric setting of every method is range-checked on load
    ("2-steps", T, "--method iql --task CarCircle --steps -5 --out {out}", 2,
     ["steps", ">= 1"], ["{out}"], None),
    ("2-batch-zero", T, "--method iql --task CarCircle --set batch_size=0 --out {out}", 2,
     ["batch_size", ">= 1"], ["{out}"], None),
    ("2-batch-negative", T, "--method td3bc --task CarCircle --set batch_size=-3 --out {out}", 2,
     ["batch_size"], ["{out}"], None),
    ("2-hidden", T, "--method bc_safe --task CarCircle --set hidden=[0] --out {out}", 2,
     ["hidden[0]"], ["{out}"], None),
    ("2-sweep-overrides", S, "--config {root}/bad_overrides.yaml --check", 2,
     ["overrides.bc_safe", "steps", ">= 1"], [], None),
    # 3. dspo.py: a user error is a message, not a traceback
    ("3-task", D, "--task Nope --out {out}", 2, ["unknown task 'Nope'", "valid tasks"], ["{out}"], None),
    ("3-key", D, "--task CarCircle --set discriminator.nope=1 --out {out}", 2,
     ["discriminator.nope", "unknown setting"], ["{out}"], None),
    ("3-type", D, "--task CarCircle --set bc.steps=many --out {out}", 2,
     ["bc.steps", "expected an integer"], ["{out}"], None),
    ("3-range", D, "--task CarCircle --set diffusion.learning_rate=-1 --out {out}", 2,
     ["diffusion.learning_rate", "out of range"], ["{out}"], None),
    ("3-set-syntax", D, "--task CarCircle --set bc.steps --out {out}", 2,
     ["--set", "KEY=VALUE"], ["{out}"], None),
    ("3-config-missing", D, "--config {root}/nope.yaml --out {out}", 2,
     ["nope.yaml", "does not exist"], ["{out}"], None),
    ("3-dataset", D, "--task CarCircle --dataset {root}/nope.hdf5 --out {out}", 2,
     ["nope.hdf5", "no such file"], ["{out}"], None),
    ("3-no-dataset", D, "--task CarCircle --dataset {root}/empty --out {out}", 2,
     ["no dataset for task 'CarCircle'", "collect.py"], ["{out}"], None),
    ("3-split", D, "--task CarCircle --profile quick --dataset {good} --set split.n_safe=100 "
     "--out {out}", 2, ["safe"], ["{out}"], None),
    ("3-threads", D, "--task CarCircle --threads -1 --out {out}", 2, ["--threads", ">= 1"],
     ["{out}"], None),
    # 4. a refused run writes nothing, so the corrected rerun is not "different settings"
    ("4-n-safe", D, "--task CarCircle --profile quick --dataset {good} --set split.n_safe=0 "
     "--out {out}", 2, ["split.n_safe", ">= 1"], ["{out}"], None),
    # 5. damaged artefacts are named and deleted (their stages run again); here the data is then
    # missing, so the rerun stops right after, having said what it removed
    ("5-artefacts", D, "--task CarCircle --profile quick --dataset {root}/nope.hdf5 --out {out}", 2,
     ["labels.npz is unreadable", "discriminator.pt is unreadable",
      "discriminator.in-progress.pt is unreadable", "result.json is unreadable", "runs again"],
     ["{out}/labels.npz", "{out}/discriminator.pt", "{out}/discriminator.in-progress.pt",
      "{out}/result.json"], corrupt_run),
    ("5-config-json", D, "--task CarCircle --profile quick --out {out}", 2,
     ["config.json is unreadable", "rm -r"], [], corrupt_config),
    # 6. a policy evaluated on a task of another observation size
    ("6-obs-size", E, "--task DroneRun --policy {root}/carcircle_policy.pt", 2,
     ["obs_dim=8", "DroneRun", "obs_dim=17"], [], None),
    # 7. YAML syntax errors name the file and the line
    ("7-sweep-yaml", S, "--config {root}/bad_syntax.yaml --check", 2,
     ["bad_syntax.yaml", "not valid YAML", "line 2"], [], None),
    ("7-dspo-yaml", D, "--config {root}/bad_syntax.yaml --out {out}", 2,
     ["bad_syntax.yaml", "not valid YAML"], ["{out}"], None),
    # 8. --check loads each task's dataset header
    ("8-check-ragged", S, "--config {root}/ragged_sweep.yaml --check", 2,
     ["CarCircle", "different numbers of rows"], [], None),
    ("8-check-missing", S, "--config {root}/missing_sweep.yaml --check", 2,
     ["CarCircle", "no dataset"], [], None),
    # 9. resources and method names
    ("9-max-concurrent", S, "--max-concurrent 0 --check", 2, ["--max-concurrent", ">= 1"], [], None),
    ("9-num-cpus", S, "--num-cpus -1 --check", 2, ["--num-cpus", ">= 1"], [], None),
    ("9-unknown-method", S, "--method iqlx --check", 2, ["unknown method 'iqlx'", "methods"], [],
     None),
    # 10. an empty sweep YAML is refused, not a paper-profile sweep
    ("10-empty-yaml", S, "--config {root}/empty.yaml --check", 2, ["empty.yaml", "empty"], [], None),
    # 11. smaller
    ("11-policy-folder", E, "--task CarCircle --policy {root}/no_policy_here", 2,
     ["no_policy_here", "folder", "policy.pt"], [], None),
    ("11-not-a-policy", E, "--task CarCircle --policy {root}/junk.pt", 2,
     ["junk.pt", "not a dspo-ray policy file"], [], None),
    ("11-eval-workers", E, "--task CarCircle --eval-workers 0", 2, ["--eval-workers", ">= 1"], [],
     None),
    ("11-eval-seed", E, "--task CarCircle --seed -5", 2, ["--seed", ">= 0"], [], None),
    ("11-train-seed", T, "--method iql --task CarCircle --seed -1 --out {out}", 2,
     ["seed", ">= 0"], ["{out}"], None),
    ("11-train-workers", T, "--method bc_safe --task CarCircle --eval-workers -2 --out {out}", 2,
     ["--eval-workers", ">= 1"], ["{out}"], None),
    ("11-train-out", T, "--method bc_safe --task CarCircle --dataset {root}/nope.hdf5 --out {out}",
     2, ["nope.hdf5"], ["{out}"], None),
    ("11-out-is-a-file", T, "--method bc_safe --task CarCircle --dataset {good} --n-safe 3 "
     "--n-unlabelled 5 --out {root}/junk.pt", 2, ["junk.pt", "File exists"], [], None),
    ("11-ragged-columns", T, "--method bc_safe --task CarCircle --dataset {ragged} --out {out}", 2,
     ["different numbers of rows", "truncated or malformed"], ["{out}"], None),
]


def run_script(script: str, argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """``python script argv``'s exit status and stderr, run in this process (the imports are
    paid once for the whole table): the script's own ``if __name__ == "__main__"`` path."""
    import runpy

    monkeypatch.setattr(sys, "argv", [str(REPO / script), *argv])
    capsys.readouterr()
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
        status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_answer(case, data, tmp_path, monkeypatch, capsys):
    name, script, arguments, status, words, gone, setup = case
    values = {**{k: str(v) for k, v in data.items()}, "out": str(tmp_path / "run")}
    argv = [a.format(**values) for a in arguments.split()]
    if setup is not None:
        setup(tmp_path / "run", argv)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DSRL_DATASET_DIR", str(data["root"] / "empty"))
    code, stderr = run_script(script, argv, monkeypatch, capsys)
    assert code == status, stderr
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines()
              if line.startswith(("error:", f"{Path(script).name}: error:"))]
    assert len(errors) == 1, stderr  # one line that says what is wrong
    for word in words:
        assert word in stderr, (word, stderr)
    for path in gone:
        assert not Path(path.format(**values)).exists(), (path, stderr)
    assert not list(tmp_path.rglob(".*.tmp-*")), "a temporary file was left behind"


def test_a_real_process_exits_2_without_a_traceback(data, tmp_path):
    """The table runs the scripts in this process; one case as a real process, from another
    folder."""
    proc = subprocess.run([sys.executable, str(REPO / D), "--task", "CarCircle", "--set",
                           "split.n_safe=0", "--out", str(tmp_path / "run")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "error: split.n_safe: 0 is out of range (must be >= 1)"
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------ checks without a subprocess

def test_interrupt_is_exit_130_with_a_resume_hint(capsys):
    from dspo_ray.cli import run_cli

    def interrupted(argv):
        raise KeyboardInterrupt

    assert run_cli(interrupted, resume_hint="rerun the same command to resume") == 130
    err = capsys.readouterr().err
    assert "interrupted; rerun the same command to resume" in err and "Traceback" not in err


def test_a_bug_keeps_its_traceback():
    from dspo_ray.cli import run_cli

    def buggy(argv):
        raise ZeroDivisionError("a bug, not bad input")

    with pytest.raises(ZeroDivisionError):
        run_cli(buggy)


def test_a_sweep_with_no_finished_trial_exits_1(capsys):
    """8: 'no trial finished' is a failure (the summary's retry count is checked elsewhere)."""
    import pandas as pd

    from dspo_ray.commands import sweep as module

    class Result:
        experiment_path = "results/sweeps/x"
        trials = pd.DataFrame({"status": ["error", "error"]})

    assert module.sweep_exit_status(Result) == 1
    assert "no trial finished (2 of 2 errored)" in capsys.readouterr().err
    Result.trials = pd.DataFrame({"status": ["error", "finished"]})
    assert module.sweep_exit_status(Result) == 0
    # a stage-1-only sweep (stop_after: labels) has done its job
    Result.trials = pd.DataFrame({"status": ["stopped_as_configured"] * 2})
    assert module.sweep_exit_status(Result) == 0


WRAPPERS = sorted(str(p.relative_to(REPO)) for p in [*REPO.glob("experiments/*.py"),
                                                     REPO / "analysis" / "make_tables.py"])


def test_every_wrapper_runs_its_command_and_leaves_sys_path_alone(tmp_path):
    """16.6: experiments/*.py and analysis/make_tables.py only call their command's cli() (no
    sys.path editing); each one's --help, as a real process from another folder, is the command's."""
    assert len(WRAPPERS) == 8
    for script in WRAPPERS:
        source = (REPO / script).read_text()
        assert "sys.path" not in source and "from dspo_ray.commands." in source, script
        proc = subprocess.run([sys.executable, str(REPO / script), "--help"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("usage:"), (script, proc.stderr)


def test_a_run_folder_is_a_policy_and_sizes_are_known(tmp_path):
    """11 and 6 in-process: a run folder holding policy.pt loads; evaluate() refuses a policy of
    another observation size before any episode runs."""
    from dspo_ray.evaluation import evaluate
    from dspo_ray.policies import MLPPolicy, PolicyError, save_policy
    from dspo_ray.saved_policies import load_policy

    save_policy(tmp_path / "policy.pt", MLPPolicy(8, 2, (4,)))
    policy = load_policy(tmp_path)
    with pytest.raises(PolicyError, match="obs_dim=8.*DroneRun"):
        evaluate(policy, "DroneRun", episodes=1, workers=1)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        evaluate(policy, TASK, episodes=1, workers=0)


def test_damaged_artefacts_are_recomputed_and_stage_time_counts_every_attempt(data, tmp_path):
    """5: a truncated labels.npz, discriminator.pt and result.json are remade on the rerun, which
    finishes; 11: an interrupted stage's time is added to the time of the attempt that finishes."""
    from dspo_ray.dspo.config import profile_config
    from dspo_ray.dspo.pipeline import run_dspo
    from dspo_ray.training import LocalRunner

    torch.set_num_threads(1)
    config = profile_config("quick", task=TASK, dataset=str(data["good"]), eval_episodes=1,
                            eval_workers=1, **{"split.n_safe": 5, "split.n_unlabelled": 10,
                                               "discriminator.steps": 4, "diffusion.steps": 4,
                                               "generation.n_windows": 4, "bc.steps": 10})
    run = tmp_path / "run"

    class InterruptedOnce(LocalRunner):
        """The diffusion stage is interrupted once after 0.3 s of work."""
        interrupted = False

        def run(self, stage, train_fn, workdir, **kwargs):
            if stage == "diffusion" and not self.interrupted:
                InterruptedOnce.interrupted = True
                import time
                time.sleep(0.3)
                raise KeyboardInterrupt
            return super().run(stage, train_fn, workdir, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run_dspo(config, run, runner=InterruptedOnce())
    first = run_dspo(config, run, runner=InterruptedOnce())
    assert first["time/diffusion_s"] >= 0.3  # the interrupted attempt counts
    assert not list(run.glob("*.time-spent.json"))
    for name in ("labels.npz", "discriminator.pt", "result.json"):
        (run / name).write_bytes((run / name).read_bytes()[:20])
    again = run_dspo(config, run)
    assert np.isfinite(again["eval/normalized_reward"])
    with np.load(run / "labels.npz") as f:
        assert len(f["safety_signal"]) == 15
    assert json.loads((run / "result.json").read_text())["task"] == TASK
