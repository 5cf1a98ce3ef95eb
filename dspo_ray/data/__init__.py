"""Data: DSRL-format files, trajectories and the cost-label-free split of the paper."""

from dspo_ray.data.dsrl import (DatasetError, TrailingRowsWarning, dsrl_filename, load_trajectories,
                                read_dsrl, split_into_trajectories, write_dsrl)
from dspo_ray.data.lookup import dataset_dir, find_dataset
from dspo_ray.data.split import (CostLabelFreeData, HiddenTruth, SplitConfig, SplitError,
                                 make_cost_label_free_split)
from dspo_ray.data.trajectory import CostedTrajectory, Trajectory, stack_transitions

__all__ = [
    "CostLabelFreeData", "CostedTrajectory", "DatasetError", "HiddenTruth", "SplitConfig",
    "SplitError", "TrailingRowsWarning", "Trajectory", "dataset_dir", "dsrl_filename", "find_dataset",
    "load_trajectories", "make_cost_label_free_split", "read_dsrl", "split_into_trajectories",
    "stack_transitions", "write_dsrl", "load_task_data", "task_dataset_file",
]


def task_dataset_file(task, dataset=None):
    """The DSRL file a run of ``task`` reads: ``dataset`` if it is a file, else the one
    :func:`find_dataset` picks in that folder (None: $DSRL_DATASET_DIR, the shipped datasets, the
    built ones)."""
    from pathlib import Path

    path = Path(dataset) if dataset is not None else None
    if path is None or path.is_dir():
        path = find_dataset(task, path)
    return path


def load_task_data(task, dataset=None, split=None):
    """Find, read, validate and split a task's dataset: the usual first line of every method.

    ``dataset``: a DSRL file, a folder holding one, or None ($DSRL_DATASET_DIR, then the shipped
    datasets). Returns ``(CostLabelFreeData, HiddenTruth)``; learners take only the first.
    """
    path = task_dataset_file(task, dataset)
    return make_cost_label_free_split(load_trajectories(path, task), task, split or SplitConfig())


def check_task_dataset(task, dataset=None):
    """Find ``task``'s dataset and check its header (the columns, their row counts and widths)
    without reading the data: what ``sweep.py --check`` runs for each task. Returns the path;
    raises DatasetError naming the file, the problem and the fix."""
    from dspo_ray.data.dsrl import columns_error, read_columns
    from dspo_ray.tasks import get_task

    spec = get_task(task)
    path = task_dataset_file(spec, dataset)
    shapes = read_columns(path, read=lambda column: tuple(column.shape))  # the header only
    problem = columns_error(path, spec, shapes)
    if problem:
        raise DatasetError(problem)
    return path


def check_task_datasets(tasks, dataset=None):
    """:func:`check_task_dataset` for every task; one DatasetError listing every task whose
    dataset is missing or unusable, and the one command that builds those that have a recipe."""
    from dspo_ray.data.lookup import missing_buildable
    from dspo_ray.data.recipes import build_command

    problems = []
    for task in tasks:
        try:
            check_task_dataset(task, dataset)
        except DatasetError as e:  # says where it looked or what is wrong, and the fix
            problems.append(f"{task}: {e}")
    if problems:
        buildable = missing_buildable(tasks, dataset)
        build = (f"; build the missing ones with '{build_command(buildable)}' (a sweep: rerun it "
                 "with --build-missing)" if buildable else "")
        raise DatasetError("datasets missing or unusable for some tasks: " + "; ".join(problems)
                           + build)
