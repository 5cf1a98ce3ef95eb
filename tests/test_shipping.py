"""Shipped dataset packs: lossless for every column, found by find_dataset, damage detected."""

import json
import lzma

import numpy as np
import pytest

from dspo_ray.data import DatasetError, dsrl_filename, find_dataset, load_trajectories, read_dsrl
from dspo_ray.data import shipping as shipping_module
from dspo_ray.data.collect import CollectConfig, collect, collection_reset_seeds
from dspo_ray.data.shipping import can_replay, pack_dataset, unpack_columns


@pytest.fixture(scope="module")
def swimmer_collection(tmp_path_factory):
    """A real (tiny) SwimmerVel collection: one run of 3 episodes of 1000 steps, of which at
    most 2 are kept (the pack must find which of the run's reset seeds they had)."""
    cfg = CollectConfig(task="SwimmerVel", episodes=3, keep=2, n_envs=1, steps_per_env=500, seed=4)
    return collect(cfg, tmp_path_factory.mktemp("swimmer"), log=lambda m: None).path


def test_columns_pack_rebuilds_every_column_and_is_found(carcircle_dataset, tmp_path, monkeypatch):
    raw = carcircle_dataset / dsrl_filename("CarCircle", 50)
    pack = pack_dataset(raw, "CarCircle", tmp_path / "shipped")
    assert pack.name == "SafetyCarCircle-v0-100-50.pack.xz"
    with lzma.open(tmp_path / "whole.xz", "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(raw.read_bytes())
    assert pack.stat().st_size < (tmp_path / "whole.xz").stat().st_size, "no smaller than plain xz"
    meta, columns = unpack_columns(pack)
    assert meta["codec"] == "columns"
    original = read_dsrl(raw, "CarCircle")
    for k, v in original.items():
        assert columns[k].dtype == v.dtype and np.array_equal(columns[k], v), k
    # find_dataset unpacks it once into the cache, as an ordinary DSRL file
    monkeypatch.setattr(shipping_module, "SHIPPED_DATASET_DIR", tmp_path / "shipped")
    monkeypatch.setattr(shipping_module, "SHIPPED_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv("DSRL_DATASET_DIR", str(tmp_path / "empty"))
    found = find_dataset("CarCircle")
    assert found == tmp_path / "cache" / raw.name
    for k, v in read_dsrl(found, "CarCircle").items():
        assert np.array_equal(v, original[k]), k
    assert find_dataset("CarCircle").stat().st_mtime == found.stat().st_mtime  # not unpacked again


def test_replay_pack_re_simulates_a_collection_exactly(swimmer_collection, tmp_path):
    assert can_replay("SwimmerVel") and not can_replay("CarCircle")
    seeds = collection_reset_seeds(json.loads(swimmer_collection.with_suffix(".json").read_text()))
    pack = pack_dataset(swimmer_collection, "SwimmerVel", tmp_path, reset_seeds=seeds)
    meta, columns = unpack_columns(pack)
    assert meta["codec"] == "replay"
    for k, v in read_dsrl(swimmer_collection, "SwimmerVel").items():
        assert np.array_equal(columns[k], v), k
    # the observations are not in the pack: it is far smaller than the columns encoding
    plain = pack_dataset(swimmer_collection, "SwimmerVel", tmp_path / "columns")
    assert pack.stat().st_size < 0.5 * plain.stat().st_size


def test_replay_needs_the_collections_seeds(swimmer_collection, carcircle_dataset, tmp_path):
    # seeds the collection (seed 4: resets from 400012 on, and 4 itself) never used: every kept
    # episode is named (how many are kept depends on the run: those above the max cost are dropped)
    kept = len(load_trajectories(swimmer_collection, "SwimmerVel"))
    with pytest.raises(ValueError, match=rf"{kept} episode\(s\).*start in no state"):
        pack_dataset(swimmer_collection, "SwimmerVel", tmp_path, reset_seeds=range(1000, 1010))
    with pytest.raises(ValueError, match="cannot be replayed"):
        pack_dataset(carcircle_dataset / dsrl_filename("CarCircle", 50), "CarCircle", tmp_path,
                     reset_seeds=range(10))
    assert not list(tmp_path.iterdir()), "a refused pack leaves nothing behind"


def test_a_damaged_pack_is_refused_with_the_fix(carcircle_dataset, tmp_path):
    pack = pack_dataset(carcircle_dataset / dsrl_filename("CarCircle", 50), "CarCircle", tmp_path)
    blob = bytearray(pack.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    broken = tmp_path / "broken" / pack.name
    broken.parent.mkdir()
    broken.write_bytes(bytes(blob))
    with pytest.raises(DatasetError, match="not a readable dataset pack.*git checkout"):
        unpack_columns(broken)
    # an intact container whose contents no longer match the checksums
    import io
    with np.load(io.BytesIO(lzma.decompress(pack.read_bytes()))) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["rewards"] = arrays["rewards"].copy()
    arrays["rewards"][0, 0, 0] ^= 1
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    broken.write_bytes(lzma.compress(buffer.getvalue()))
    with pytest.raises(DatasetError, match=r"\['rewards'\] do not match.*restore it from git"):
        unpack_columns(broken)
