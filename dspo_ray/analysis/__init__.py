"""From sweep results to the paper's tables and plots (pandas, matplotlib, optuna; no Ray)."""

from dspo_ray.analysis.plots import (hyperparameter_plots, learning_curves, parameter_importances,
                                     reward_cost_plots)
from dspo_ray.analysis.results import SOURCES, ResultsError, committed_trials, load_results
from dspo_ray.analysis.tables import (FORMATS, average_ranks, choose_configurations, oracle_table,
                                      provenance_table, rank_methods, stage1_frame, table1, table2)

__all__ = ["FORMATS", "ResultsError", "SOURCES", "average_ranks", "choose_configurations", "committed_trials",
           "hyperparameter_plots", "learning_curves", "load_results", "oracle_table",
           "parameter_importances", "provenance_table", "rank_methods", "reward_cost_plots",
           "stage1_frame", "table1", "table2"]
