#!/usr/bin/env bash
# The discard-transport benchmark against Postfix, in one run, on this machine:
#   bench/discard/compare.sh [-n 20000] [-c 1,10,50] [--reps 1] [--json FILE] [...]
# Runs ../shared/bench/compare.sh (Postfix with its queue on disk and on tmpfs, then ours,
# each loaded by smtp-source with the same options) and prints the table with the ratios.
# Ours runs with full durability (queue_sync = full) on the same disk as Postfix's "disk"
# queue; deliveries are counted from the discard agent's status=sent lines in our log, so
# every message is accounted for, as Postfix's are.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
shared=${MTA_SHARED_BENCH:-$repo/../shared/bench}
[ -x "$shared/compare.sh" ] || { echo "bench/discard/compare.sh: no $shared/compare.sh" >&2; exit 66; }
exec "$shared/compare.sh" \
    --ours "$repo/bench/discard/ours.sh {host} {port} {workdir}" \
    --ours-name mta-disk \
    --ours-log '{workdir}/maillog' \
    --ours-log-regex 'mta/discard\[[0-9]+\]: [^ ]+: to=<[^>]*>,.* status=sent ' \
    "$@"
