"""The stage cache: which settings each stage's artefact depends on, its keys, and runs that share
stages through it (tiny CarCircle runs, the real simulator)."""

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from dspo_ray.config import to_dict
from dspo_ray.data import task_dataset_file
from dspo_ray.dspo import pipeline
from dspo_ray.dspo.config import DSPOConfig
from dspo_ray.dspo.pipeline import (ARTEFACTS, EVALUATION_SETTINGS, SETTINGS_WITHOUT_ARTEFACTS,
                                    TRAINING_STAGES, run_dspo, stage_keys, stage_settings)
from dspo_ray.dspo.stage_cache import leaf_settings
from test_dspo_pipeline import RecordingRunner, tiny_config  # the pipeline tests' tiny budgets and runner

torch.set_num_threads(1)
TASK = "CarCircle"
SHARED = ("discriminator", "labels", "diffusion")


def reused(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines()
            if line.startswith("stage ") and " reused from cache " in line]


def untimed(result: dict) -> dict:
    return {k: v for k, v in result.items() if not k.startswith("time/")}


# ------------------------------------------------------------------ which settings, which keys

def _covers(prefixes, key):
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def test_every_setting_is_placed_in_a_stage_or_named_as_changing_no_artefact():
    """A new DSPOConfig field fails here until it is put in the Stage.settings of the first stage
    that reads it (pipeline.TRAINING_STAGES), in EVALUATION_SETTINGS, or, if no artefact depends
    on it, in SETTINGS_WITHOUT_ARTEFACTS: else the cache would reuse artefacts across its values."""
    placed = ([p for s in TRAINING_STAGES for p in s.settings] + list(EVALUATION_SETTINGS)
              + list(SETTINGS_WITHOUT_ARTEFACTS))
    leaves = leaf_settings(to_dict(DSPOConfig()))
    unplaced = [key for key in leaves if not _covers(placed, key)]
    assert not unplaced, f"settings no stage depends on and not named as changing nothing: {unplaced}"
    # and every name placed is a real setting (a misspelt prefix would cover nothing)
    assert all(any(_covers([p], key) for key in leaves) for p in placed), placed
    # each setting placed once: in the first stage that reads it
    assert len(placed) == len(set(placed))


def test_guidance_weight_is_generations_and_settings_accumulate():
    assert not _covers(stage_settings("diffusion"), "diffusion.guidance_weight")
    assert _covers(stage_settings("diffusion"), "diffusion.steps")
    assert _covers(stage_settings("generation"), "diffusion.guidance_weight")
    # the oracle windows replace generation, not training: a learned run's stages are reused
    assert not _covers(stage_settings("diffusion"), "stage2_oracle")
    assert _covers(stage_settings("generation"), "stage2_oracle")
    for earlier, later in zip(TRAINING_STAGES, TRAINING_STAGES[1:]):
        assert set(stage_settings(earlier.name)) <= set(stage_settings(later.name))
    for key in ("eval_workers", "eval_episodes", "stop_after", "profile"):
        assert not _covers(stage_settings("bc"), key)


def test_keys_change_with_what_each_stage_reads(carcircle_dataset, monkeypatch):
    file = task_dataset_file(TASK, str(carcircle_dataset))
    base = stage_keys(tiny_config(carcircle_dataset), file)

    def changed(config=None, **overrides):
        keys = stage_keys(config or tiny_config(carcircle_dataset, **overrides), file)
        return [name for name in keys if keys[name] != base[name]]

    every = [s.name for s in TRAINING_STAGES]
    assert changed(**{"discriminator.vclub_coef": 0.5}) == every
    assert changed(**{"split.seed": 1}) == every and changed(seed=1) == every
    assert changed(**{"diffusion.steps": 11}) == ["diffusion", "generation", "bc"]
    assert changed(**{"diffusion.guidance_weight": 1.0}) == ["generation", "bc"]
    # re-ranking the signal reuses the trained discriminator
    assert changed(**{"discriminator.signal_rerank": "within_return"}) == every[1:]
    assert changed(**{"generation.safety_condition": 0.9}) == ["generation", "bc"]
    assert changed(**{"bc.steps": 51}) == ["bc"]
    assert changed(dataclasses.replace(tiny_config(carcircle_dataset), eval_workers=2,
                                       eval_episodes=3, stop_after="labels", profile="paper")) == []
    assert len(set(base.values())) == len(base)  # every stage its own key
    # the dataset file: another modification time is another file
    st = file.stat()
    os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    try:
        assert [n for n, k in stage_keys(tiny_config(carcircle_dataset), file).items()
                if k != base[n]] == every
    finally:
        os.utime(file, ns=(st.st_atime_ns, st.st_mtime_ns))
    # a stage's code version: its key and every later one's
    bumped = tuple(dataclasses.replace(s, code_version=2) if s.name == "diffusion" else s
                   for s in TRAINING_STAGES)
    monkeypatch.setattr(pipeline, "TRAINING_STAGES", bumped)
    assert changed() == ["diffusion", "generation", "bc"]


# ------------------------------------------------------------------------- runs sharing a cache

def test_runs_share_stages_through_the_cache(carcircle_dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    config = tiny_config(carcircle_dataset)

    # without a cache, then with a cold one: the same result (the cache changes nothing)
    plain = run_dspo(config, tmp_path / "plain")
    runner = RecordingRunner()
    first = run_dspo(config, tmp_path / "first", runner=runner, stage_cache=cache)
    assert runner.stages == ["discriminator", "diffusion", "bc"]
    assert reused(capsys.readouterr().out) == []
    assert untimed(first) == pytest.approx(untimed(plain), nan_ok=True)
    entries = sorted(p.name.split("-")[0] for p in cache.iterdir())
    assert entries == sorted(s.name for s in TRAINING_STAGES)  # every stage published
    assert not list(cache.glob(".*"))  # no temporary folder left

    # only a generation setting differs: stages 1-3 come from the cache, byte for byte
    runner = RecordingRunner()
    other = run_dspo(tiny_config(carcircle_dataset, **{"generation.safety_condition": 0.9}),
                     tmp_path / "other", runner=runner, stage_cache=cache)
    assert runner.stages == ["bc"]  # no discriminator, no diffusion trained
    assert reused(capsys.readouterr().out) == list(SHARED)
    for name in SHARED:
        for file in (ARTEFACTS[name], ARTEFACTS[name] + ".metrics.json"):
            assert (tmp_path / "other" / file).read_bytes() == (tmp_path / "first" / file).read_bytes()
        assert other[f"time/{name}_s"] == first[f"time/{name}_s"]  # as when it was trained
    assert other["generation/safety_condition"] == pytest.approx(0.9)
    assert other["discriminator/auroc"] == first["discriminator/auroc"]
    assert not list((tmp_path / "other").glob("*.in-progress.pt"))

    # the same settings again: every stage reused, the result as when trained
    runner = RecordingRunner()
    again = run_dspo(config, tmp_path / "again", runner=runner, stage_cache=cache)
    assert runner.stages == [] and reused(capsys.readouterr().out) == [
        s.name for s in TRAINING_STAGES]
    assert {k: v for k, v in again.items() if k not in ("time/evaluation_s", "time/total_s")} == \
        pytest.approx({k: v for k, v in first.items()
                       if k not in ("time/evaluation_s", "time/total_s")}, nan_ok=True)
    saved = json.loads((tmp_path / "again" / "result.json").read_text())
    assert untimed(saved) == pytest.approx(untimed(first), nan_ok=True)

    # the signal re-ranked within its return: the trained discriminator is reused, and the labels
    # are the first run's signals re-ranked against the unlabelled trajectories
    from dspo_ray.dspo.discriminator import rerank_within_return

    runner = RecordingRunner()
    run_dspo(tiny_config(carcircle_dataset, **{"discriminator.signal_rerank": "within_return"}),
             tmp_path / "rerank", runner=runner, stage_cache=cache)
    assert runner.stages == ["diffusion", "bc"] and reused(capsys.readouterr().out) == ["discriminator"]
    with np.load(tmp_path / "rerank" / "labels.npz") as r, np.load(tmp_path / "first" / "labels.npz") as f:
        expected = rerank_within_return(f["safety_signal"], f["returns"], ~f["is_demo"])
        np.testing.assert_allclose(r["safety_signal"], expected)
        assert not np.allclose(r["safety_signal"], f["safety_signal"])

    # a discriminator setting differs: nothing can be reused
    runner = RecordingRunner()
    run_dspo(tiny_config(carcircle_dataset, **{"discriminator.vclub_coef": 0.5}),
             tmp_path / "vclub", runner=runner, stage_cache=cache)
    assert runner.stages == ["discriminator", "diffusion", "bc"]
    assert reused(capsys.readouterr().out) == []


def test_interrupted_publish_and_damaged_entry_are_not_used(carcircle_dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    config = tiny_config(carcircle_dataset, stop_after="labels")
    keys = stage_keys(config, task_dataset_file(TASK, str(carcircle_dataset)))
    # a publish interrupted before its rename: a hidden temporary folder with a partial artefact
    leftover = cache / f".discriminator-{keys['discriminator']}.tmp-1-00000000"
    leftover.mkdir(parents=True)
    (leftover / "discriminator.pt.metrics.json").write_text("{}")
    (leftover / "discriminator.pt").write_bytes(b"half an artefact")
    # an entry damaged after it was published
    damaged = cache / f"labels-{keys['labels']}"
    damaged.mkdir()
    (damaged / "labels.npz.metrics.json").write_text("{}")
    (damaged / "labels.npz").write_bytes(b"not an npz")

    runner = RecordingRunner()
    result = run_dspo(config, tmp_path / "run", runner=runner, stage_cache=cache)
    out = capsys.readouterr()
    assert runner.stages == ["discriminator"] and reused(out.out) == []
    assert "unreadable" in out.err and 0 <= result["stage1/heldout_demo_auroc"] <= 1
    assert leftover.is_dir()  # never read (and not ours to delete: it may be another run's)
    for name in ("discriminator", "labels"):  # published afresh
        entry = cache / f"{name}-{keys[name]}"
        assert (entry / ARTEFACTS[name]).read_bytes() == (
            tmp_path / "run" / ARTEFACTS[name]).read_bytes()

    # stop_after with a warm cache: both stages reused, nothing trained, no result.json
    runner = RecordingRunner()
    again = run_dspo(config, tmp_path / "again", runner=runner, stage_cache=cache)
    assert runner.stages == [] and reused(capsys.readouterr().out) == ["discriminator", "labels"]
    assert again == pytest.approx(result, nan_ok=True)
    assert not (tmp_path / "again" / "result.json").exists()


def test_oracle_diagnostic_with_a_cache(carcircle_dataset, tmp_path, capsys):
    cache = tmp_path / "cache"
    config = tiny_config(carcircle_dataset, stop_after="labels", stage1_oracle=True)
    first = run_dspo(config, tmp_path / "first", stage_cache=cache)
    assert reused(capsys.readouterr().out) == []
    assert not list(cache.glob("discriminator-*"))  # the oracle trains no discriminator
    second = run_dspo(config, tmp_path / "second", stage_cache=cache)
    assert reused(capsys.readouterr().out) == ["labels"]
    assert second["diagnostic/oracle_signal"] == 1 and second == pytest.approx(first, nan_ok=True)
    # a learned-signal run never takes the oracle's labels
    learned = tiny_config(carcircle_dataset, stop_after="labels")
    run_dspo(learned, tmp_path / "learned", stage_cache=cache)
    assert reused(capsys.readouterr().out) == []
