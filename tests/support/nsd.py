"""A real NSD on 127.0.0.1 serving test zones, some of them DNSSEC-signed at test time.

    zones = [Zone("signed.test", ["@ MX 10 mx", "mx A 127.0.0.1"], signed=True),
             Zone("unsigned.test", ["@ MX 10 mx", "mx A 127.0.0.1"])]
    nsd = start_nsd(directory, zones)        # nsd.port; nsd.trust_anchors: DNSKEY files
    ...
    stop_daemon(nsd.process)

NSD (Debian package nsd) is authoritative only: it never validates nor recurses; a validating
resolver in front of it (support.unbound) is what sets the AD bit. A signed zone gets a fresh
ECDSA P-256 key (ldns-keygen, package ldnsutils; one key signs everything, as a combined
signing key) and is signed with ldns-signzone (NSEC, signatures valid from now for four
weeks). `tamper` changes records *after* signing, so their signatures no longer match: a
validator finds them bogus and answers SERVFAIL, while the rest of the zone stays secure.

NSD runs in the foreground (-d), without chroot or privilege drop, on a free loopback port,
and is stopped by the PID the caller started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

import dns.rcode

from support.daemon import binary, dns_reply, free_port, run_tool, start_daemon

ZONE_TTL = 300
NEGATIVE_TTL = 60  # the SOA minimum: how long resolvers keep NXDOMAIN and NODATA
ALGORITHM = "ECDSAP256SHA256"


@dataclass(frozen=True)
class Zone:
    """One zone: records as zone-file lines relative to the origin (SOA and NS are added)."""

    name: str
    records: Sequence[str]
    signed: bool = False
    tamper: Sequence[tuple[str, str, str]] = ()  # (owner, type, new rdata) after signing


@dataclass
class Nsd:
    process: Popen[bytes]
    port: int
    directory: Path
    trust_anchors: list[Path] = field(default_factory=list)  # DNSKEY files of signed zones


def zone_text(zone: Zone) -> str:
    lines = [
        f"$ORIGIN {zone.name}.",
        f"$TTL {ZONE_TTL}",
        f"@ SOA ns.{zone.name}. hostmaster.{zone.name}. 1 3600 600 86400 {NEGATIVE_TTL}",
        f"@ NS ns.{zone.name}.",
        "ns A 127.0.0.1",
        *zone.records,
    ]
    return "\n".join(lines) + "\n"


def sign_zone(directory: Path, zone: Zone, zone_file: Path) -> tuple[Path, Path]:
    """Sign zone_file with a new key: (the signed zone file, the key's DNSKEY file)."""
    keygen = binary("ldns-keygen", "ldnsutils")
    signzone = binary("ldns-signzone", "ldnsutils")
    # -k: a key-signing key (flags 257), the one a trust anchor names; it signs the records too
    base = run_tool([keygen, "-a", ALGORITHM, "-k", zone.name], directory).strip()
    signed = zone_file.with_name(zone_file.name + ".signed")
    run_tool([signzone, "-f", str(signed), str(zone_file), base], directory)
    if zone.tamper:
        _tamper(signed, zone)
    return signed, directory / f"{base}.key"


def _tamper(signed: Path, zone: Zone) -> None:
    lines = signed.read_text().splitlines()
    for owner, rdtype, rdata in zone.tamper:
        fqdn = f"{owner}.{zone.name}." if owner != "@" else f"{zone.name}."
        for index, line in enumerate(lines):
            fields = line.split(None, 4)
            if len(fields) == 5 and fields[0] == fqdn and fields[3] == rdtype:
                lines[index] = "\t".join([*fields[:4], rdata])
                break
        else:
            raise AssertionError(f"nothing to tamper with: {fqdn} {rdtype}")
    signed.write_text("\n".join(lines) + "\n")


def _config(directory: Path, port: int, zone_files: Sequence[tuple[str, Path]]) -> str:
    text = f"""server:
  ip-address: 127.0.0.1@{port}
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "{directory}"
  pidfile: "{directory}/nsd.pid"
  xfrdfile: "{directory}/xfrd.state"
  zonelistfile: "{directory}/zone.list"
  logfile: "{directory}/nsd.log"
  database: ""
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
"""
    for name, path in zone_files:
        text += f'zone:\n  name: "{name}"\n  zonefile: "{path.name}"\n'
    return text


def answering(port: int, zone: str) -> bool:
    """NSD answers the zone's SOA once it has loaded the zone."""
    reply = dns_reply(port, zone)
    return reply is not None and reply.rcode() == dns.rcode.NOERROR and bool(reply.answer)


def start_nsd(directory: Path, zones: Sequence[Zone]) -> Nsd:
    """Write and sign the zones in directory, then start NSD on a free loopback port."""
    nsd = binary("nsd", "nsd")
    zone_files: list[tuple[str, Path]] = []
    anchors: list[Path] = []
    for zone in zones:
        path = directory / f"{zone.name}.zone"
        path.write_text(zone_text(zone))
        if zone.signed:
            path, anchor = sign_zone(directory, zone, path)
            anchors.append(anchor)
        zone_files.append((zone.name, path))
    port = free_port()
    config = directory / "nsd.conf"
    config.write_text(_config(directory, port, zone_files))
    process = start_daemon(
        [nsd, "-d", "-c", str(config)], directory, "nsd", lambda: answering(port, zones[0].name)
    )
    return Nsd(process, port, directory, anchors)
