"""16.6: a non-editable ``pip install .`` gives console scripts that work without the checkout.

The project is built from a copy of its sources (so nothing is written into the checkout), with
``--no-deps --no-build-isolation --no-index`` (offline: this environment's setuptools builds it,
and its packages serve the dependencies), into a ``--target`` folder. Each command's ``--help``
then runs as a real process from another folder, importing the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ["dspo-sweep", "dspo-run", "dspo-train", "dspo-evaluate", "dspo-collect", "dspo-tables",
            "dspo-figure3", "dspo-figure4"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "dspo_ray", source / "dspo_ray",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--no-build-isolation", "--no-index", "--no-compile", "--target",
         str(target), str(source)], capture_output=True, text=True, timeout=300)
    if build.returncode != 0:
        try:
            import setuptools  # noqa: F401
        except ImportError:
            pytest.skip("pip cannot build offline here: no setuptools in this environment")
        raise AssertionError(f"pip install . failed:\n{build.stderr[-3000:]}")
    return target


def test_console_scripts_of_a_non_editable_install_answer_help(installed, tmp_path):
    scripts = {name: installed / "bin" / name for name in COMMANDS}
    missing = [name for name, path in scripts.items() if not path.is_file()]
    assert not missing, f"console scripts not installed: {missing}"
    # the installed copy, not the checkout: only the target folder on the path, run elsewhere
    env = {**os.environ, "PYTHONPATH": str(installed)}
    which = subprocess.run([sys.executable, "-c", "import dspo_ray.commands; print(dspo_ray.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert Path(which.stdout.strip()).resolve().is_relative_to(installed.resolve()), which
    running = {name: subprocess.Popen([str(path), "--help"], cwd=tmp_path, env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for name, path in scripts.items()}
    for name, proc in running.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, err[-2000:])
        assert out.startswith(f"usage: {name} "), (name, out[:200])
