#!/usr/bin/env bash
# The whole test suite: set up, lint, then run every test twice, with the compiled hotpath
# and with the pure-Python twins (MTA_NO_EXTENSIONS=1). Fails if the compiled modules were
# expected but not built. This is the README's test command and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh --tests
VENV=${MTA_VENV:-.venv}
PATH="$PWD/$VENV/bin:$PATH"

echo "== compiled modules present"
python - <<'PY'
from hotpath import parser, queue
missing = [m.__name__ for m in (parser, queue) if not m.ACCELERATED]
if missing:
    raise SystemExit(f"compiled hotpath expected but not built: {missing}")
print("compiled:", parser.__name__, queue.__name__)
PY

echo "== lint"
ruff check .
ruff format --check . || { echo "run: ruff format ." >&2; exit 1; }
mypy
lint-imports
for pyx in hotpath/*.pyx; do
    cython -3 -Werror -Wextra -o "$(mktemp -d)/check.c" "$pyx"
done

echo "== tests, compiled hotpath"
python -m pytest -q -p no:cacheprovider "$@"
echo "== tests, pure-Python twins (MTA_NO_EXTENSIONS=1)"
MTA_NO_EXTENSIONS=1 python -m pytest -q -p no:cacheprovider "$@"
