#!/usr/bin/env bash
# Run mta in the foreground as the discard-transport benchmark target:
#   bench/discard/ours.sh HOST PORT WORKDIR [queue_sync]
# Everything (config, queue, log) lives under WORKDIR; every transport is discard, so the
# figure is Postfix's "discard transport" limit: SMTP in, queue, qmgr, delivery agent, log.
# The queue is durable (queue_sync = full) unless a fourth argument says otherwise;
# MTA_BENCH_MAIN_CF adds main.cf lines (e.g. "qmgr_intake_delay = 0") to compare settings.
set -euo pipefail
host=$1 port=$2 workdir=$3 sync=${4:-full}
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$workdir/conf"
cat > "$workdir/conf/main.cf" <<CF
base_directory = $workdir/data
maillog_file = $workdir/maillog
myhostname = mta-bench.localdomain
mydestination =
mynetworks = 127.0.0.0/8
default_transport = discard
relay_transport = discard
local_transport = discard
queue_sync = $sync
# The benchmark measures throughput, not privilege separation: as root, with an interpreter
# that only root can run (pyenv under a 0700 /root), the services stay root.
mail_owner = $(id -un)
${MTA_BENCH_MAIN_CF:-}
CF
cat > "$workdir/conf/master.cf" <<CF
$host:$port inet n - n - ${SMTPD_PROCESSES:--} smtpd
qmgr      unix n - n 300 1 qmgr
discard   unix - - n - - discard
CF
if [ -x "$repo/.venv/bin/mta" ]; then
    exec "$repo/.venv/bin/mta" -c "$workdir/conf" start --foreground
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m mta -c "$workdir/conf" start --foreground
