"""Datasets built on demand from their recipe (dspo_ray/data/recipes.py): dspo-collect --build,
find_dataset's build cache, and what the sweeps and training runs say when a dataset is missing.
The builds are real (the collector), with tiny recipes."""

import json

import pytest

from dspo_ray.cli import run_cli
from dspo_ray.data import DatasetError, check_task_datasets, find_dataset, load_trajectories
from dspo_ray.data import recipes, shipping
from dspo_ray.data.recipes import RECIPES, DatasetRecipe, built_dataset_dir
from dspo_ray.data.scripted import rule_driver
from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
from dspo_ray.tasks import get_task

# one run of 4 CarCircle episodes (2 environments x 3 rollouts of 256 steps), 3 kept: seconds
TINY = DatasetRecipe("CarCircle", runs=1, episodes=4, keep=3, n_envs=2)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty dataset cache, no shipped packs and no $DSRL_DATASET_DIR files."""
    monkeypatch.setattr(shipping, "SHIPPED_CACHE_DIR", tmp_path / "cache" / "datasets")
    monkeypatch.setattr(shipping, "SHIPPED_DATASET_DIR", tmp_path / "no-shipped")
    monkeypatch.setenv("DSRL_DATASET_DIR", str(tmp_path / "no-dsrl"))
    return tmp_path / "cache" / "datasets"


def _collect(argv, capsys):
    from dspo_ray.commands.collect import main

    status = run_cli(main, argv)
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("task", list(RECIPES))
def test_every_recipe_is_a_valid_collect_command(task):
    """Each recipe names a registry task and parses and checks as dspo-collect arguments (nothing
    run), into the task's build folder; a wall time always says where it was measured."""
    from dspo_ray.commands.collect import recipe_args

    recipe = RECIPES[task]
    assert recipe.task == task and get_task(task).name == task
    args = recipe_args(task)  # raises SystemExit on an option dspo-collect refuses
    assert args.task == [task] and args.out == str(built_dataset_dir(task))
    assert args.per_run >= 1 and args.keep == recipe.keep
    assert args.min_safe_share == recipe.min_safe_share and args.seed == recipe.seed
    assert args.n_envs == recipe.n_envs
    ppo = recipe.driver == "ppo" or (recipe.driver == "auto" and get_task(task).suite != "MetaDrive")
    assert args.drivers[task] == ("ppo" if ppo else rule_driver(task))
    assert (recipe.wall_minutes is None) == (recipe.measured is None)
    assert recipe.command == f"dspo-collect --build {task}"
    # "shipped" says whether datasets/ holds the task's pack
    packs = list(SHIPPED_DATASET_DIR.glob(f"{get_task(task).dsrl_filename_prefix}*{PACK_SUFFIX}"))
    assert recipe.shipped == bool(packs)


def test_recipes_do_not_invent_times():
    assert DatasetRecipe("Walker2dVel").time_text == "time not measured yet"
    assert RECIPES["mediummean"].time_text == "about 20 min on 2 cores"
    assert not RECIPES["easydense"].shipped and RECIPES["easydense"].driver == "idm"
    assert RECIPES["DroneRun"].time_text == "about 8 min on 2 cores"
    with pytest.raises(ValueError, match="where it was measured"):
        DatasetRecipe("CarCircle", wall_minutes=5)
    with pytest.raises(KeyError, match="unknown task"):
        DatasetRecipe("Nope")


def test_build_then_find_and_load(cache, monkeypatch, capsys):
    monkeypatch.setitem(RECIPES, "CarCircle", TINY)
    # missing: the error names the one command and says the time is not measured
    with pytest.raises(DatasetError, match=r"build it with 'dspo-collect --build CarCircle' "
                                           r"\(time not measured yet\)"):
        find_dataset("CarCircle")

    status, out, _ = _collect(["--build", "CarCircle", "--no-ray", "--no-progress"], capsys)
    assert status == 0
    folder = built_dataset_dir("CarCircle")
    assert folder == cache / "built" / "CarCircle"
    path = find_dataset("CarCircle")
    assert path.parent == folder and path.name == f"{get_task('CarCircle').dsrl_filename_prefix}3.hdf5"
    assert f"built {path}" in out
    assert len(load_trajectories(path, "CarCircle")) == 3
    assert json.loads((folder / recipes.BUILD_RECORD).read_text()) == {
        "collect_args": TINY.collect_args(), "file": path.name}
    assert not list(folder.rglob(".*tmp*")), "a temporary file was left behind"

    # cached: a second build does nothing
    mtime = path.stat().st_mtime_ns
    status, out, _ = _collect(["--build", "CarCircle", "--no-ray"], capsys)
    assert status == 0 and "already built" in out and path.stat().st_mtime_ns == mtime

    # a build that stopped before its record counts as not built; rerunning finishes it from the
    # recorded run (no retraining: the run's files are kept)
    run_files = {p: p.stat().st_mtime_ns for p in (folder / "runs").rglob("*")}
    (folder / recipes.BUILD_RECORD).unlink()
    with pytest.raises(DatasetError, match="dspo-collect --build CarCircle"):
        find_dataset("CarCircle")
    assert _collect(["--build", "CarCircle", "--no-ray"], capsys)[0] == 0
    assert find_dataset("CarCircle") == path
    assert {p: p.stat().st_mtime_ns for p in (folder / "runs").rglob("*")} == run_files

    # a user's own file wins over the built one
    own = cache.parent.parent / "no-dsrl"
    own.mkdir()
    (own / path.name).write_bytes(path.read_bytes())
    assert find_dataset("CarCircle") == own / path.name

    # a changed recipe is not silently served from the old build
    monkeypatch.setitem(RECIPES, "CarCircle", DatasetRecipe("CarCircle", runs=1, episodes=4, keep=2, n_envs=2))
    status, _, err = _collect(["--build", "CarCircle", "--no-ray"], capsys)
    assert status == 2 and "built with another recipe" in err and "delete" in err


def test_build_errors_are_one_line(cache, capsys):
    status, _, err = _collect(["--build", "CarGoal1"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "'CarGoal1' has no dataset recipe" in err and "easydense" in err
    with pytest.raises(SystemExit) as e:  # data-shaping options come from the recipe
        _collect(["--build", "easydense", "--episodes", "3"], capsys)
    assert e.value.code == 2 and "--build takes --episodes from the task's recipe" in capsys.readouterr().err


def test_sweep_check_lists_the_build_commands(cache):
    with pytest.raises(DatasetError) as e:
        check_task_datasets(["easydense", "CarGoal1", "mediummean"])
    message = str(e.value)
    assert "easydense: no dataset" in message and "CarGoal1: no dataset" in message
    assert ("build the missing ones with 'dspo-collect --build easydense --build mediummean'"
            in message and "--build-missing" in message)
    assert "--build CarGoal1" not in message  # no recipe: the old advice
    # a folder given explicitly is searched alone: a build would not help there
    with pytest.raises(DatasetError) as e:
        check_task_datasets(["easydense"], cache / "elsewhere")
    assert "--build" not in str(e.value)


def test_sweep_build_missing_builds_before_the_check(cache, monkeypatch, capsys):
    from dspo_ray.commands.sweep import main as sweep

    monkeypatch.setitem(RECIPES, "CarCircle", TINY)
    argv = ["--task", "CarCircle", "--method", "bc_safe", "--check"]
    assert run_cli(sweep, argv) == 2
    assert "'dspo-collect --build CarCircle'" in capsys.readouterr().err
    import dspo_ray.commands.collect as collect_command

    build = collect_command.build_datasets  # here without Ray (seeded: the same file as with it)
    monkeypatch.setattr(collect_command, "build_datasets",
                        lambda tasks, **kwargs: build(tasks, **{**kwargs, "ray": False}))
    assert run_cli(sweep, argv + ["--build-missing"]) == 0
    out = capsys.readouterr().out
    assert "building the missing datasets first: dspo-collect --build CarCircle" in out
    assert "config OK" in out and find_dataset("CarCircle").parent == built_dataset_dir("CarCircle")


def test_a_training_run_names_the_build_command_in_one_line(cache, tmp_path, capsys):
    from dspo_ray.commands.train import main as train

    status = run_cli(train, ["--method", "bc_safe", "--task", "easydense", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "build it with 'dspo-collect --build easydense' (about 36 min on 2 cores)" in err
    assert not (tmp_path / "run").exists()
