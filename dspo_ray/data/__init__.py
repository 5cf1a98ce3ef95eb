"""Data: DSRL-format files, trajectories and the cost-label-free split of the paper."""

from dspo_ray.data.dsrl import (DatasetError, dataset_dir, dsrl_filename, find_dataset,
                                load_trajectories, read_dsrl, split_into_trajectories, write_dsrl)
from dspo_ray.data.split import (CostLabelFreeData, HiddenTruth, SplitConfig, SplitError,
                                 make_cost_label_free_split)
from dspo_ray.data.trajectory import CostedTrajectory, Trajectory, stack_transitions

__all__ = [
    "CostLabelFreeData", "CostedTrajectory", "DatasetError", "HiddenTruth", "SplitConfig",
    "SplitError", "Trajectory", "dataset_dir", "dsrl_filename", "find_dataset",
    "load_trajectories", "make_cost_label_free_split", "read_dsrl", "split_into_trajectories",
    "stack_transitions", "write_dsrl",
]
