#!/usr/bin/env bash
# The README's first command: set everything up, then run mta's main job on its embedded
# defaults. Until the daemon exists (issue 4) that is the protocol engine's benchmark,
# compiled against pure Python.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
exec .venv/bin/python bench/parser_bench.py --quick "$@"
