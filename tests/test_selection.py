"""Selection never reads the hidden truth: every shipped sweep config's scheduler and searcher
metrics are label-free (or the final simulator evaluation), hidden-truth metrics are refused, and
the oracle-signal diagnostic is kept out of search spaces and Table 1."""

from pathlib import Path

import pytest
import yaml

from dspo_ray.config import ConfigError
from dspo_ray.distributed.config import load_sweep_config, sweep_config_from_dict
from dspo_ray.metrics import LABEL_FREE_STAGE1_METRIC, reads_hidden_truth

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"


def sweep_configs():
    return [p for p in sorted(CONFIGS.glob("*.yaml")) if "methods" in yaml.safe_load(p.read_text())]


def test_there_are_shipped_sweeps():
    names = {p.name for p in sweep_configs()}
    assert {"quick.yaml", "paper.yaml", "table1_quick.yaml", "table2_quick.yaml"} <= names


@pytest.mark.parametrize("path", sweep_configs(), ids=lambda p: p.name)
def test_no_shipped_sweep_selects_on_hidden_truth(path):
    config = load_sweep_config(path)
    read = config.selection_metrics()
    for component, metrics in read.items():
        for metric in metrics:
            assert not reads_hidden_truth(metric), f"{path.name}: {component} reads {metric}"
    assert config.scheduler.intermediate_metric == LABEL_FREE_STAGE1_METRIC
    if config.scheduler.type == "asha":
        assert read["scheduler"][0] == LABEL_FREE_STAGE1_METRIC
    assert all(m.startswith("eval/") for m in read["searcher"])


def base(**extra):
    return {"name": "t", "tasks": ["CarCircle"], "seeds": [0], "methods": ["dspo"],
            "overrides": {"dspo": {"profile": "quick"}}, **extra}


@pytest.mark.parametrize("metric", ["discriminator/f1", "discriminator/auroc", "neg_return/auroc",
                                    "diagnostic/oracle_signal"])
def test_scheduler_metric_reading_hidden_truth_is_refused(metric):
    with pytest.raises(ConfigError, match="reads the hidden truth"):
        sweep_config_from_dict(base(scheduler={"type": "asha", "intermediate_metric": metric}))
    with pytest.raises(ConfigError, match="final simulator evaluation"):
        sweep_config_from_dict(base(scheduler={"intermediate_metric": "eval/normalized_cost"}))
    assert sweep_config_from_dict(base()).scheduler.intermediate_metric == LABEL_FREE_STAGE1_METRIC


def test_grid_runs_fixed_configurations_as_groups():
    grid = [{"discriminator.return_agnostic": True}, {"discriminator.return_agnostic": False},
            {"discriminator.variant": "mlp"}]
    config = sweep_config_from_dict(base(search={"grid": {"dspo": grid}}, seeds=[0, 1]))
    assert config.samples_per_cell("dspo") == 3 and config.total_trials() == 6
    assert config.selection_metrics()["searcher"] == []  # nothing searched
    with pytest.raises(ConfigError, match=r"search.grid.dspo\[1\]"):
        sweep_config_from_dict(base(search={"grid": {"dspo": [{}, {"discriminator.variant": "x"}]}}))
    with pytest.raises(ConfigError, match="search.grid.dspo: .*also has a search.space"):
        sweep_config_from_dict(base(search={
            "grid": {"dspo": grid},
            "space": {"dspo": {"discriminator.vclub_coef": {"type": "uniform", "low": 0.1, "high": 1}}}}))


def test_grid_proposals_in_the_searcher():
    pytest.importorskip("ray")
    from dspo_ray.distributed.sweep import CellGridSearcher

    grid = [{"discriminator.return_agnostic": True}, {"discriminator.variant": "mlp"}]
    config = sweep_config_from_dict(base(search={"grid": {"dspo": grid}}, seeds=[0, 1]))
    searcher = CellGridSearcher(config)
    got = [searcher.suggest(str(i)) for i in range(4)]
    assert [(g["group"], g["seed"], g["params"]) for g in got] == [
        ("dspo/CarCircle/0", 0, grid[0]), ("dspo/CarCircle/0", 1, grid[0]),
        ("dspo/CarCircle/1", 0, grid[1]), ("dspo/CarCircle/1", 1, grid[1])]
    assert searcher.suggest("5") == "FINISHED"


@pytest.mark.parametrize("key", ["stage1_oracle", "stage2_oracle"])
def test_oracle_is_refused_in_table1_and_in_search_spaces(key):
    """Both oracles (the hidden truth as the signal; real truly-safe windows for the generated
    ones) are diagnostics: never searched over, never beside Table 1's baselines."""
    oracle = {"profile": "quick", key: True}
    table1 = yaml.safe_load((CONFIGS / "table1_quick.yaml").read_text())
    table1["overrides"]["dspo"] = {**table1["overrides"]["dspo"], key: True}
    with pytest.raises(ConfigError, match="kept out of Table 1"):
        sweep_config_from_dict(table1)
    with pytest.raises(ConfigError, match="kept out of Table 1"):  # DSPO beside a baseline
        sweep_config_from_dict(base(methods=["dspo", "bc_safe"], overrides={"dspo": oracle}))
    with pytest.raises(ConfigError, match=rf"search.grid.dspo\[1\].{key}"):
        sweep_config_from_dict(base(methods=["dspo", "bc_safe"], search={"grid": {"dspo": [
            {}, {key: True}]}}))
    with pytest.raises(ConfigError, match=f"search.space.dspo.{key}"):
        sweep_config_from_dict(base(search={"space": {"dspo": {
            key: {"type": "choice", "values": [False, True]}}}}))
    # a diagnostic sweep of DSPO alone may run it (learned vs oracle, one group each)
    config = sweep_config_from_dict(base(search={"grid": {"dspo": [{}, {key: True}]}}))
    assert config.samples_per_cell("dspo") == 2
