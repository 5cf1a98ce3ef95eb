"""What a run's numbers depend on beyond its config: which data and which kind of machine.

Two runs of one config and seed can differ for two reasons a config does not show. A dataset
rebuilt from its recipe is other data (the simulators' episodes differ: ``datasets/DATASETS.md``),
so each result names its dataset file by content. And the CPU picks the math kernels (torch's
vectorised level, Intel MKL's code path), which changes the digits of a trained policy and so of
its evaluation (``docs/results/table1/five_seeds/README.md``), so each result names the CPU and
``MKL_CBWR`` (set to ``AVX2`` it pins MKL's path at no speed cost: ``benchmarks/mkl_cbwr.py``).
A table may pool runs of one dataset only; a reader may ask which machine made a cell.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np

KEYS = ("data/file", "data/sha256", "machine/cpu_model", "machine/cpu_capability",
        "machine/mkl_cbwr", "machine/torch")
"""The result fields :func:`run_provenance` writes (text, not numbers)."""

DIGEST_CHARS = 16
"""Hex characters of a dataset's SHA-256 kept in results: enough to tell builds apart."""


def dataset_sha256(path: str | Path) -> str:
    """The SHA-256 of a DSRL file's columns (names, dtypes, shapes, values), not of its bytes: the
    same data written twice (a shipped pack unpacked on another machine) has one digest, a
    rebuild another. It reads the file a second time (0.4-0.6 s for HalfCheetahVel's 173 MB on the
    2-core machine), small beside a run's minutes."""
    from dspo_ray.data.dsrl import read_columns

    def column_digest(column) -> list:
        values = np.ascontiguousarray(column[()])
        return [values.dtype.str, list(values.shape), hashlib.sha256(values.tobytes()).hexdigest()]

    columns = read_columns(Path(path), read=column_digest)
    return hashlib.sha256(json.dumps(columns, sort_keys=True).encode()).hexdigest()


def cpu_model() -> str:
    """The CPU's model name as the operating system reports it ('' where it does not)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_provenance(dataset_file: str | Path) -> dict[str, str]:
    """The result fields naming a run's dataset (by content) and machine (CPU, kernels, torch)."""
    import torch

    return {"data/file": Path(dataset_file).name,
            "data/sha256": dataset_sha256(dataset_file)[:DIGEST_CHARS],
            "machine/cpu_model": cpu_model(),
            "machine/cpu_capability": torch.backends.cpu.get_cpu_capability(),
            # unset by default: Intel MKL then picks its code path by CPU (benchmarks/mkl_cbwr.py)
            "machine/mkl_cbwr": os.environ.get("MKL_CBWR", "unset"),
            "machine/torch": torch.__version__}
