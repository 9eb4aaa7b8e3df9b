"""Destination.secure from a real validating resolver (unbound) in front of a real NSD."""

from __future__ import annotations

import dns.rdatatype
from support.dnssec import SIGNED, UNSIGNED, DnssecWorld

from mta.dns.resolver import Destination


def only(result: object) -> Destination:
    assert isinstance(result, tuple) and len(result) == 1, result
    destination = result[0]
    assert isinstance(destination, Destination)
    return destination


def test_signed_mx_and_address_are_secure(world: DnssecWorld) -> None:
    destination = only(world.resolver().resolve(SIGNED))
    assert destination == Destination(10, f"mx.{SIGNED}", ("127.0.0.1",), 25, secure=True)


def test_unsigned_mx_and_address_are_not_secure(world: DnssecWorld) -> None:
    destination = only(world.resolver().resolve(UNSIGNED))
    assert destination == Destination(10, f"mx.{UNSIGNED}", ("127.0.0.1",), 25, secure=False)


def test_a_secure_mx_pointing_into_an_unsigned_zone_is_not_secure(
    world: DnssecWorld,
) -> None:
    destination = only(world.resolver().resolve(f"mixed.{SIGNED}"))
    assert destination.host == f"mx.{UNSIGNED}" and not destination.secure


def test_an_insecure_mx_pointing_at_a_signed_host_is_not_secure(world: DnssecWorld) -> None:
    destination = only(world.resolver().resolve(f"to-signed.{UNSIGNED}"))
    assert destination.host == f"mx.{SIGNED}" and not destination.secure


def test_implicit_mx_is_secure_when_the_missing_mx_is_validated(
    world: DnssecWorld,
) -> None:
    destination = only(world.resolver().resolve(f"plain.{SIGNED}:2525"))
    assert destination == Destination(0, f"plain.{SIGNED}", ("127.0.0.1",), 2525, secure=True)


def test_brackets_need_only_secure_addresses(world: DnssecWorld) -> None:
    assert only(world.resolver().resolve(f"[mx.{SIGNED}]")).secure
    assert not only(world.resolver().resolve(f"[mx.{UNSIGNED}]")).secure


def test_address_records_of_both_families_must_be_secure(world: DnssecWorld) -> None:
    # IPv4 and IPv6: the AAAA answer is a validated NODATA, so the host stays secure
    resolver = world.resolver(inet_protocols="all")
    assert only(resolver.resolve(f"[mx.{SIGNED}]")).secure
    assert resolver.lookup(f"mx.{SIGNED}", dns.rdatatype.AAAA).secure
    assert not world.resolver(inet_protocols="all").resolve(f"[mx.{UNSIGNED}]")[0].secure  # type: ignore[index]


def test_address_literals_are_never_secure(world: DnssecWorld) -> None:
    assert not only(world.resolver().resolve("[127.0.0.1]")).secure


def test_without_dnssec_nothing_is_secure(world: DnssecWorld) -> None:
    # the same validating resolver, but smtp_dns_support_level is not dnssec: no DO, no AD
    for level in ("enabled", ""):
        plain = world.resolver(support_level=level)
        assert only(plain.resolve(SIGNED)) == Destination(10, f"mx.{SIGNED}", ("127.0.0.1",))
        assert not plain.lookup(SIGNED, dns.rdatatype.MX).secure


def test_the_secure_flag_is_cached_with_the_answer(world: DnssecWorld) -> None:
    resolver = world.resolver()
    first = only(resolver.resolve(SIGNED))
    queries = resolver.queries
    assert only(resolver.resolve(SIGNED)) == first and first.secure
    assert resolver.queries == queries


def test_validated_nxdomain_is_secure_and_permanent(world: DnssecWorld) -> None:
    resolver = world.resolver()
    result = resolver.resolve(f"nothing.{SIGNED}")
    assert not isinstance(result, tuple) and result.permanent
    answer = resolver.lookup(f"nothing.{SIGNED}", dns.rdatatype.MX)
    assert answer.nxdomain and answer.secure
