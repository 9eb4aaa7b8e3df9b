"""A real DNSSEC-validating resolver (unbound) on 127.0.0.1 in front of a test NSD.

    resolver = start_unbound(directory, nsd.port, nsd.trust_anchors)
    NextHopResolver(["127.0.0.1"], resolver.port, support_level="dnssec")
    ...
    stop_daemon(resolver.process)

unbound (Debian package unbound) forwards every query to the NSD on loopback (a forward zone
for "." : it never asks a root server, so no traffic leaves the machine) and validates the
answers against the trust anchors given: answers from a signed zone carry the AD bit, answers
from a zone without an anchor are insecure (no AD), and a bogus signature is SERVFAIL. The
names under .test are RFC 6761 special-use names that unbound answers NXDOMAIN by default;
`local-zone: test. nodefault` lets them through to NSD.

unbound runs in the foreground (-d), without chroot or privilege drop, on a free loopback
port, and is stopped by the PID the caller started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

from support.daemon import binary, dns_reply, free_port, start_daemon


@dataclass
class Unbound:
    process: Popen[bytes]
    port: int
    directory: Path


def _config(directory: Path, port: int, upstream: int, anchors: Sequence[Path]) -> str:
    text = f"""server:
  interface: 127.0.0.1@{port}
  outgoing-interface: 127.0.0.1
  do-ip6: no
  num-threads: 1
  outgoing-range: 64
  username: ""
  chroot: ""
  directory: "{directory}"
  pidfile: "{directory}/unbound.pid"
  logfile: "{directory}/unbound.log"
  use-syslog: no
  verbosity: 1
  val-log-level: 2
  do-not-query-localhost: no
  qname-minimisation: no
  trust-anchor-signaling: no
  module-config: "validator iterator"
  local-zone: "test." nodefault
"""
    for anchor in anchors:
        text += f'  trust-anchor-file: "{anchor}"\n'
    text += f'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{upstream}\n'
    return text


def answering(port: int, name: str) -> bool:
    """Any reply (SERVFAIL included, while the forwarder warms up) means unbound is up."""
    return dns_reply(port, name) is not None


def start_unbound(
    directory: Path, upstream_port: int, trust_anchors: Sequence[Path], probe: str = "test."
) -> Unbound:
    """Start unbound on a free loopback port, forwarding to 127.0.0.1@upstream_port."""
    unbound = binary("unbound", "unbound")
    port = free_port()
    config = directory / "unbound.conf"
    config.write_text(_config(directory, port, upstream_port, trust_anchors))
    process = start_daemon(
        [unbound, "-d", "-c", str(config)], directory, "unbound", lambda: answering(port, probe)
    )
    return Unbound(process, port, directory)
