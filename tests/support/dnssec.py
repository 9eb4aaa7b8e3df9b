"""A DNSSEC world for DANE tests: a throwaway PKI, a signed and an unsigned zone served by a
real NSD, and a real validating unbound in front of it (support.nsd, support.unbound).

    with dnssec_world() as world:      # tests/dane/conftest.py: once per session
        world.resolver().resolve("signed.test")   # secure Destinations
        world.pki.mx                   # the certificate the TLSA records of mx name

signed.test (signed at test time; its key is unbound's trust anchor):
  @          MX 10 mx                      secure MX
  mx         A 127.0.0.1; _25._tcp: TLSA 3 1 1 (mx leaf SPKI) and 2 0 1 (root certificate)
  plain      A only                        implicit MX, secure NODATA for MX
  nodata     A; _25._tcp.nodata TXT        secure NODATA for TLSA
  nx         A; no _25._tcp.nx at all      secure NXDOMAIN for TLSA
  bogus      A; *._tcp.bogus TLSA          changed after signing: bogus, SERVFAIL
  bogusmx    MX 10 bogus                   end-to-end: deferred
  alias      CNAME mx                      TLSA found at the expanded name
  alias-nodata CNAME nodata; _25._tcp.alias-nodata TLSA   found at the initial name
  unusable   A; _25._tcp TLSA 1 1 1 + 0 0 1  records, none usable
  mixed      MX 10 mx.unsigned.test.       secure MX, insecure host
  dane       MX 10 mx-dane; *._tcp.mx-dane TLSA 3 1 1 (receiver leaf)   end-to-end: verified
  mx-alias   CNAME mx-dane                 end-to-end: SNI is the TLSA base domain, mx-dane
  bad        MX 10 mx-bad;  *._tcp.mx-bad  TLSA 3 1 1 (another key)     end-to-end: 4.7.5
  ta         MX 10 mx-ta;   *._tcp.mx-ta   TLSA 2 1 1 (intermediate)   end-to-end: DANE-TA
unsigned.test (no trust anchor: insecure):
  @          MX 10 mx; mx A 127.0.0.1; _25._tcp.mx TLSA 3 1 1 (mx leaf: would match),
             *._tcp.mx TLSA 3 1 1 (would not): both ignored, the zone is insecure
  to-signed  MX 10 mx.signed.test.         insecure MX, secure host
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mta.dns.resolver import NextHopResolver
from support.certs import Issued, make_ca, make_leaf
from support.daemon import stop_daemon
from support.nsd import Nsd, Zone, start_nsd
from support.unbound import Unbound, start_unbound

SIGNED = "signed.test"
UNSIGNED = "unsigned.test"
WRONG_HASH = "ab" * 32


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    mx: Issued  # mx.signed.test, issued by intermediate
    receiver: Issued  # mx-dane/mx-bad/mx-ta.signed.test and mx.unsigned.test, by intermediate


@dataclass
class DnssecWorld:
    nsd: Nsd
    unbound: Unbound
    pki: Pki
    directory: Path

    def resolver(self, **options: object) -> NextHopResolver:
        """A NextHopResolver asking the validating unbound, DNSSEC on, IPv4 only."""
        settings: dict[str, object] = {
            "timeout": 3.0,
            "support_level": "dnssec",
            "inet_protocols": "ipv4",
            "address_limit": 0,
        }
        settings.update(options)
        return NextHopResolver(["127.0.0.1"], self.unbound.port, **settings)  # type: ignore[arg-type]


def make_pki() -> Pki:
    root = make_ca("DANE Test Root")
    intermediate = make_ca("DANE Test Intermediate", issuer=root)
    mx = make_leaf([f"mx.{SIGNED}"], issuer=intermediate)
    receiver = make_leaf(
        [f"mx-dane.{SIGNED}", f"mx-bad.{SIGNED}", f"mx-ta.{SIGNED}", f"mx.{UNSIGNED}"],
        issuer=intermediate,
    )
    return Pki(root, intermediate, mx, receiver)


def zones(pki: Pki) -> list[Zone]:
    signed = [
        "@ MX 10 mx",
        "mx A 127.0.0.1",
        f"_25._tcp.mx TLSA {pki.mx.tlsa(3, 1, 1)}",
        f"_25._tcp.mx TLSA {pki.root.tlsa(2, 0, 1)}",
        "plain A 127.0.0.1",
        "nodata A 127.0.0.1",
        '_25._tcp.nodata TXT "no TLSA here"',
        "nx A 127.0.0.1",
        "bogus A 127.0.0.1",
        f"*._tcp.bogus TLSA {pki.mx.tlsa(3, 1, 1)}",
        "bogusmx MX 10 bogus",
        "alias CNAME mx",
        "alias-nodata CNAME nodata",
        f"_25._tcp.alias-nodata TLSA {pki.mx.tlsa(3, 1, 2)}",
        "unusable A 127.0.0.1",
        f"_25._tcp.unusable TLSA {pki.mx.tlsa(1, 1, 1)}",
        f"_25._tcp.unusable TLSA {pki.root.tlsa(0, 0, 1)}",
        f"mixed MX 10 mx.{UNSIGNED}.",
        "dane MX 10 mx-dane",
        "mx-dane A 127.0.0.1",
        f"*._tcp.mx-dane TLSA {pki.receiver.tlsa(3, 1, 1)}",
        "mx-alias CNAME mx-dane",
        "bad MX 10 mx-bad",
        "mx-bad A 127.0.0.1",
        f"*._tcp.mx-bad TLSA 3 1 1 {WRONG_HASH}",
        "ta MX 10 mx-ta",
        "mx-ta A 127.0.0.1",
        f"*._tcp.mx-ta TLSA {pki.intermediate.tlsa(2, 1, 1)}",
    ]
    unsigned = [
        "@ MX 10 mx",
        "mx A 127.0.0.1",
        f"_25._tcp.mx TLSA {pki.mx.tlsa(3, 1, 1)}",
        f"*._tcp.mx TLSA 3 1 1 {WRONG_HASH}",
        f"to-signed MX 10 mx.{SIGNED}.",
    ]
    return [
        Zone(
            SIGNED,
            signed,
            signed=True,
            tamper=[("*._tcp.bogus", "TLSA", f"3 1 1 {WRONG_HASH}")],
        ),
        Zone(UNSIGNED, unsigned),
    ]


@contextlib.contextmanager
def dnssec_world() -> Iterator[DnssecWorld]:
    """Make the PKI, sign and serve the zones, start the resolver; stop both by PID after."""
    directory = Path(tempfile.mkdtemp(prefix="mta-dane-"))
    pki = make_pki()
    nsd: Nsd | None = None
    unbound: Unbound | None = None
    try:
        nsd = start_nsd(directory, zones(pki))
        unbound = start_unbound(directory, nsd.port, nsd.trust_anchors, probe=f"{SIGNED}.")
        yield DnssecWorld(nsd, unbound, pki, directory)
    finally:
        if unbound is not None:
            stop_daemon(unbound.process)
        if nsd is not None:
            stop_daemon(nsd.process)
        shutil.rmtree(directory, ignore_errors=True)
