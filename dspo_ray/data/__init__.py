"""Data: DSRL-format files, trajectories and the cost-label-free split of the paper."""

from dspo_ray.data.dsrl import (DatasetError, TrailingRowsWarning, dataset_dir, dsrl_filename,
                                find_dataset, load_trajectories, read_dsrl,
                                split_into_trajectories, write_dsrl)
from dspo_ray.data.split import (CostLabelFreeData, HiddenTruth, SplitConfig, SplitError,
                                 make_cost_label_free_split)
from dspo_ray.data.trajectory import CostedTrajectory, Trajectory, stack_transitions

__all__ = [
    "CostLabelFreeData", "CostedTrajectory", "DatasetError", "HiddenTruth", "SplitConfig",
    "SplitError", "TrailingRowsWarning", "Trajectory", "dataset_dir", "dsrl_filename", "find_dataset",
    "load_trajectories", "make_cost_label_free_split", "read_dsrl", "split_into_trajectories",
    "stack_transitions", "write_dsrl", "load_task_data",
]


def load_task_data(task, dataset=None, split=None):
    """Find, read, validate and split a task's dataset: the usual first line of every method.

    ``dataset``: a DSRL file, a folder holding one, or None ($DSRL_DATASET_DIR, then the shipped
    datasets). Returns ``(CostLabelFreeData, HiddenTruth)``; learners take only the first.
    """
    from pathlib import Path

    path = Path(dataset) if dataset is not None else None
    if path is None or path.is_dir():
        path = find_dataset(task, path)
    return make_cost_label_free_split(load_trajectories(path, task), task, split or SplitConfig())
