#!/usr/bin/env bash
# Create .venv with Python 3.11 and install meshseg with its pinned dependencies and test tools.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"meshseg needs Python 3.11, found {sys.version.split()[0]}"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned (==2.13.0): an open range would pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet -e '.[test]'
.venv/bin/python -m pip check
