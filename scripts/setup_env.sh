#!/usr/bin/env bash
# Creates .venv (if missing) and installs everything dspo-ray needs, idempotently.
# A stamp file records a hash of the inputs: a second run with nothing changed returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DSPO_VENV:-.venv}
PY=${PYTHON:-python3}
STAMP="$VENV/.dspo-setup-stamp"
inputs_hash=$(cat requirements.txt requirements-nodeps.txt scripts/setup_env.sh \
  scripts/patch_simulators.py pyproject.toml | sha256sum | cut -d' ' -f1)

# The editable install of dspo_ray records the folder it was made from: a .venv made in another
# checkout (a moved folder, a removed git worktree) would import that folder's code, or none.
installed_here() {
  grep -qs "\"url\": \"file://$(pwd -P)\"" "$VENV"/lib/python3.11/site-packages/dspo_ray-*.dist-info/direct_url.json
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$inputs_hash" ]; then
  installed_here && exit 0
  echo "[setup] $VENV's dspo_ray was installed from another folder; installing it from $(pwd -P)" >&2
  "$VENV/bin/python" -m pip --disable-pip-version-check -q install --no-deps -e .
  exit 0
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "dspo-ray needs Python 3.11 (the simulators have cp311 wheels); '$PY' is $("$PY" --version)." >&2
  echo "Set PYTHON=/path/to/python3.11 and run again." >&2
  exit 1
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() {
  # Some machines list local package mirrors that lack most packages: pip warns once per package.
  "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}

echo "[setup] installing into $VENV (first run: a few minutes)" >&2
# torch first and pinned: a CPU wheel of exactly this version is on our machines; anything else
# resolves to the newest CUDA build (several GB).
pip install torch==2.13.0
pip install -r requirements.txt
# Their declared pins have no cp311 wheels; the versions above are the ones they run with.
pip install --no-deps -r requirements-nodeps.txt
"$VENV/bin/python" scripts/patch_simulators.py
pip install --no-deps -e .
echo "$inputs_hash" > "$STAMP"
echo "[setup] done" >&2
