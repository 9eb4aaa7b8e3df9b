"""lookup_tlsa against a real validating resolver: secure records, validated denials, insecure
zones, bogus signatures, CNAME expansion, unusable records, and the TTL cache."""

from __future__ import annotations

import pytest
from support.daemon import free_port
from support.dnssec import SIGNED, UNSIGNED, WRONG_HASH, DnssecWorld

from mta.dns.resolver import NextHopResolver
from mta.smtp.dane import TlsaLookup, TlsaRecord, lookup_tlsa


def record(text: str) -> TlsaRecord:
    return TlsaRecord.from_text(text)


def test_secure_records(world: DnssecWorld) -> None:
    found = lookup_tlsa(world.resolver(), f"mx.{SIGNED}", 25)
    assert found.secure and found.temporary_failure is None
    assert set(found.records) == {
        record(world.pki.mx.tlsa(3, 1, 1)),
        record(world.pki.root.tlsa(2, 0, 1)),
    }
    assert found.usable == found.records and found.effective_level == "dane"
    assert found.base_domain == f"mx.{SIGNED}" and found.names == (f"mx.{SIGNED}",)


def test_secure_nodata_means_no_dane(world: DnssecWorld) -> None:
    found = lookup_tlsa(world.resolver(), f"nodata.{SIGNED}", 25)
    assert found == TlsaLookup((), True, None, f"nodata.{SIGNED}", (f"nodata.{SIGNED}",))
    assert found.effective_level == "may"


def test_secure_nxdomain_means_no_dane(world: DnssecWorld) -> None:
    # a port without records: _2525._tcp.mx.signed.test does not exist
    for host, port in ((f"nx.{SIGNED}", 25), (f"mx.{SIGNED}", 2525)):
        found = lookup_tlsa(world.resolver(), host, port)
        assert found.secure and found.records == () and found.temporary_failure is None
        assert found.effective_level == "may"


def test_insecure_zone_records_are_not_secure(world: DnssecWorld) -> None:
    found = lookup_tlsa(world.resolver(), f"mx.{UNSIGNED}", 25)
    assert not found.secure and found.temporary_failure is None
    assert found.records == (record(world.pki.mx.tlsa(3, 1, 1)),)
    assert found.effective_level == "may"
    wildcard = lookup_tlsa(world.resolver(), f"mx.{UNSIGNED}", 2525)
    assert wildcard.records == (record(f"3 1 1 {WRONG_HASH}"),) and not wildcard.secure


def test_bogus_signature_is_a_temporary_failure(world: DnssecWorld) -> None:
    resolver = world.resolver()
    found = lookup_tlsa(resolver, f"bogus.{SIGNED}", 25)
    assert found.temporary_failure is not None and "_25._tcp.bogus.signed.test" in (
        found.temporary_failure
    )
    assert not found.secure and found.records == () and found.effective_level == "defer"
    # the host itself is fine, and the failure is not cached: the next lookup asks again
    assert resolver.resolve(f"[bogus.{SIGNED}]")[0].secure  # type: ignore[index]
    queries = resolver.queries
    assert lookup_tlsa(resolver, f"bogus.{SIGNED}", 25).effective_level == "defer"
    assert resolver.queries == queries + 1


def test_a_resolver_that_does_not_answer_is_a_temporary_failure() -> None:
    silent = NextHopResolver(["127.0.0.1"], free_port(), timeout=0.3, support_level="dnssec")
    found = lookup_tlsa(silent, f"mx.{SIGNED}", 25)
    assert found.temporary_failure is not None and found.effective_level == "defer"


def test_a_secure_cname_is_expanded_first(world: DnssecWorld) -> None:
    # alias CNAME mx: the TLSA base domain is the expanded name, and both names are
    # reference identifiers (RFC 7672 3.2.2)
    found = lookup_tlsa(world.resolver(), f"alias.{SIGNED}", 25)
    assert found.secure and record(world.pki.mx.tlsa(3, 1, 1)) in found.records
    assert found.base_domain == f"mx.{SIGNED}"
    assert found.names == (f"mx.{SIGNED}", f"alias.{SIGNED}")


def test_no_records_at_the_expanded_name_falls_back_to_the_initial_name(
    world: DnssecWorld,
) -> None:
    # alias-nodata CNAME nodata: nothing at _25._tcp.nodata, records at _25._tcp.alias-nodata
    found = lookup_tlsa(world.resolver(), f"alias-nodata.{SIGNED}", 25)
    assert found.secure and found.records == (record(world.pki.mx.tlsa(3, 1, 2)),)
    assert found.base_domain == f"alias-nodata.{SIGNED}"
    assert found.names == (f"alias-nodata.{SIGNED}",)


def test_records_none_of_which_are_usable_mean_encrypt(world: DnssecWorld) -> None:
    found = lookup_tlsa(world.resolver(), f"unusable.{SIGNED}", 25)
    assert found.secure and len(found.records) == 2 and found.usable == ()
    assert found.effective_level == "encrypt"


def test_lookups_are_cached_by_ttl(world: DnssecWorld) -> None:
    resolver = world.resolver()
    first = lookup_tlsa(resolver, f"mx.{SIGNED}", 25)
    queries = resolver.queries
    assert lookup_tlsa(resolver, f"mx.{SIGNED}", 25) == first
    assert resolver.queries == queries and resolver.cache.hits >= 2


def test_without_dnssec_records_are_never_secure(world: DnssecWorld) -> None:
    found = lookup_tlsa(world.resolver(support_level="enabled"), f"mx.{SIGNED}", 25)
    assert not found.secure and found.effective_level == "may"


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        ("3 1 1 " + "00" * 32, True),
        ("3 0 2 " + "00" * 64, True),
        ("2 1 0 3059", True),
        ("2 0 1 " + "00" * 32, True),
        ("0 0 1 " + "00" * 32, False),  # PKIX-TA: unusable for SMTP (RFC 7672 3.1.3)
        ("1 1 1 " + "00" * 32, False),  # PKIX-EE
        ("4 1 1 " + "00" * 32, False),
        ("3 2 1 " + "00" * 32, False),
        ("3 1 3 " + "00" * 32, False),
        ("3 1 1 " + "00" * 31, False),  # a SHA-256 digest of the wrong length
        ("3 1 2 " + "00" * 32, False),
    ],
)
def test_usable_records(text: str, usable: bool) -> None:
    assert record(text).usable is usable
    assert str(record(text)) == text
