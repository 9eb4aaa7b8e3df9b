#!/usr/bin/env bash
# Run mta in the foreground as the relay benchmark's target (bench/relay/relaybench.py):
#   bench/relay/ours.sh HOST PORT WORKDIR
# Everything (config, queue, log) lives under WORKDIR. Every recipient goes out through the
# smtp transport; the DNS server is $MTA_BENCH_DNS (port 53), the same one Postfix uses, or,
# when $MTA_BENCH_TRANSPORT_MAP names a texthash file, that transport table (no DNS).
# The queue is durable (queue_sync = full), on the same disk as Postfix's queue.
# MTA_BENCH_MAIN_CF adds main.cf lines (e.g. to compare settings).
set -euo pipefail
host=$1 port=$2 workdir=$3
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$workdir/conf"
routing="smtp_dns_resolver_address = ${MTA_BENCH_DNS:?MTA_BENCH_DNS is not set}
smtp_dns_resolver_port = 53"
if [ -n "${MTA_BENCH_TRANSPORT_MAP:-}" ]; then
    routing="$routing
transport_maps = texthash:$MTA_BENCH_TRANSPORT_MAP"
fi
cat > "$workdir/conf/main.cf" <<CF
base_directory = $workdir/data
maillog_file = $workdir/maillog
myhostname = mta-bench.localdomain
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
default_transport = smtp
relay_transport = smtp
queue_sync = full
inet_protocols = ipv4
$routing
# the politeness both MTAs get (Postfix's defaults, written out)
default_destination_concurrency_limit = 20
initial_destination_concurrency = 5
default_destination_recipient_limit = 50
default_process_limit = 100
smtp_tls_security_level = none
# The benchmark measures throughput, not privilege separation: as root, with an interpreter
# that only root can run (pyenv under a 0700 /root), the services stay root.
mail_owner = $(id -un)
${MTA_BENCH_MAIN_CF:-}
CF
cat > "$workdir/conf/master.cf" <<CF
$host:$port inet n - n - - smtpd
qmgr      unix n - n 300 1 qmgr
smtp      unix - - n - - smtp
CF
if [ -x "$repo/.venv/bin/mta" ]; then
    exec "$repo/.venv/bin/mta" -c "$workdir/conf" start --foreground
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m mta -c "$workdir/conf" start --foreground
