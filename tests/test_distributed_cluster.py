"""Multi-node: a two-node local Ray cluster on loopback (ray.cluster_utils.Cluster, 127.0.0.2 and
127.0.0.3) where a trial's DDP stage spans both nodes and the worker node is lost mid-trial; and
the cluster files pass Ray's own config validation offline."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
LINEAR = "distributed_helpers:linear_method"
MB = 2 ** 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def two_node_cluster():
    root = Path(tempfile.mkdtemp(prefix="dspo-rc-", dir="/tmp"))  # short: socket path limit
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "HOME", "PYTHONPATH",
                                            "RAY_health_check_period_ms",
                                            "RAY_health_check_failure_threshold",
                                            "RAY_health_check_initial_delay_ms")}
    from distributed_helpers import ray_home

    os.environ.update(RAY_TMPDIR=str(root), HOME=ray_home(),
                      PYTHONPATH=f"{TESTS}:{REPO}:{saved['PYTHONPATH'] or ''}",
                      # notice the lost node in about a second, not the default ~15 s
                      RAY_health_check_period_ms="500", RAY_health_check_failure_threshold="2",
                      RAY_health_check_initial_delay_ms="500")
    from dspo_ray.distributed.sweep import RAY_ENV

    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    import ray
    from ray.cluster_utils import Cluster

    # the head holds the 'trial_slot' resource: trial processes stay on it, workers go anywhere
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.2", "resources": {"trial_slot": 1},
        "object_store_memory": 100 * MB, "include_dashboard": True,
        "dashboard_host": "127.0.0.2", "dashboard_port": _free_port()})
    worker = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.3",
                              object_store_memory=100 * MB)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield cluster, worker, root
    finally:
        ray.shutdown()
        cluster.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


def _has_registered_checkpoint(results: Path) -> bool:
    """Ray Train has recorded a checkpoint of the stage (a checkpoint folder alone may still be
    uploading; a resumed run starts from what the snapshot lists)."""
    import json

    for snapshot in results.rglob("checkpoint_manager_snapshot.json"):
        try:
            if json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                return True
        except (OSError, ValueError):
            pass
    return False


def test_worker_node_lost_mid_trial_ends_in_retried_completed_trial(two_node_cluster, tmp_path):
    import ray
    from dspo_ray.distributed.config import sweep_config_from_dict
    from dspo_ray.distributed.sweep import run_sweep

    cluster, worker, _ = two_node_cluster
    markers = tmp_path / "markers"
    config = sweep_config_from_dict({
        "name": "nodeloss", "tasks": ["CarCircle"], "seeds": [0], "methods": [LINEAR],
        "num_samples": 1,
        "overrides": {LINEAR: {"steps": 80, "lr": 0.1, "step_sleep": 0.1,
                               "marker_dir": str(markers)}},
        # the stage does not retry by itself: the trial does (Tune), resuming the stage
        "train": {"num_workers": 2, "cpus_per_worker": 1, "max_failures": 0},
        "trial": {"cpus": 0, "memory_mb": 64, "max_failures": 2, "resources": {"trial_slot": 1}},
        "scheduler": {"type": "fifo"}, "max_concurrent_trials": 1,
        "storage": str(tmp_path / "results"),
    })
    events = {}
    # the sweep runs in a thread: Ray's node management must stay in the main thread
    outcome = {}
    sweep = threading.Thread(target=lambda: outcome.update(result=run_sweep(config)), daemon=True)
    sweep.start()
    deadline = time.time() + 120
    while time.time() < deadline and sweep.is_alive():
        nodes = {p.name: p.read_text() for p in markers.glob("rank*.node")}
        if len(nodes) == 2 and _has_registered_checkpoint(tmp_path / "results"):
            events["nodes_before"] = nodes
            cluster.remove_node(worker)                 # the node dies mid-stage
            events["removed_at"] = time.time()
            # the autoscaler's replacement: a fresh node joins
            cluster.add_node(num_cpus=1, node_ip_address="127.0.0.3",
                             object_store_memory=100 * MB)
            break
        time.sleep(0.1)
    sweep.join(timeout=180)
    assert not sweep.is_alive(), "the sweep did not finish after the node loss"
    result = outcome["result"]

    assert "removed_at" in events, "the worker node was never removed"
    # the DDP stage had one worker on each node
    assert len(set(events["nodes_before"].values())) == 2
    t = result.trials
    assert len(t) == 1 and t.loc[0, "status"] == "finished"
    assert t.loc[0, "retries"] >= 1
    last = result.trials.loc[0]
    assert last["eval/normalized_reward"] > 0.99               # it trained to the end
    # the retried attempt resumed the stage from a checkpoint instead of step 0
    starts = sorted(p.name for p in markers.glob("start-rank0-step*"))
    assert any(not s.startswith("start-rank0-step0-") for s in starts), starts
    assert len(ray.nodes()) >= 2


# ----------------------------------------------------------------- cluster files, offline checks

CLUSTER_FILES = sorted((REPO / "clusters").glob("*.yaml"))


def validate_cluster_file(path: Path) -> dict:
    """Ray's own checks, offline: the JSON schema (unknown keys, types), then the provider's
    defaults merged in and the cross-field validation `ray up` runs before it calls AWS."""
    import jsonschema
    import ray.autoscaler
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load(path.read_text())
    schema_path = Path(ray.autoscaler.__file__).parent / "ray-schema.json"
    import json

    jsonschema.validate(raw, json.loads(schema_path.read_text()))
    config = prepare_config(raw)
    validate_config(config)
    return config


@pytest.mark.parametrize("path", CLUSTER_FILES, ids=[p.name for p in CLUSTER_FILES])
def test_cluster_file_passes_ray_validation(path):
    config = validate_cluster_file(path)
    text = path.read_text()
    for secret in ("aws_access_key_id", "aws_secret_access_key", "AKIA"):
        assert secret not in text
    gpu_types = [n for n in config["available_node_types"].values()
                 if n.get("resources", {}).get("GPU", 0) > 0]
    assert gpu_types and all(n["max_workers"] > n.get("min_workers", 0) for n in gpu_types)
    assert "pip install" in " ".join(config.get("setup_commands", []))


def test_cluster_validation_rejects_a_misspelt_key(tmp_path):
    import jsonschema

    aws = yaml.safe_load((REPO / "clusters" / "aws.yaml").read_text())
    aws["max_worker"] = aws.pop("max_workers")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(aws))
    with pytest.raises(jsonschema.ValidationError, match="max_worker"):
        validate_cluster_file(bad)


def test_there_is_an_aws_cluster_file():
    assert (REPO / "clusters" / "aws.yaml") in CLUSTER_FILES
