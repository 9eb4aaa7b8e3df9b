#!/usr/bin/env bash
# The README's first command: set everything up, then run mta in the foreground on its
# embedded defaults: SMTP on 127.0.0.1:2525, queue and mail under ./mta-data, log on stderr.
# Ctrl-C (or SIGTERM) stops it cleanly. Extra arguments go to `mta start`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash ci/setup.sh
exec .venv/bin/mta start --foreground "$@"
