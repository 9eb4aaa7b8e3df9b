"""NextHopResolver against a real dnsmasq: MX order, implicit MX, null MX, failures, cache."""

from __future__ import annotations

import random
import threading

import pytest
from support.daemon import free_port
from support.dnsmasq import LOCAL_TTL, Dnsmasq

from mta.config.errors import ConfigError
from mta.config.maincf import BUILTIN_DEFAULTS, Settings
from mta.dns.resolver import Answer, AnswerCache, Destination, DnsFailure, NextHopResolver


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def resolver(server: Dnsmasq, **options: object) -> NextHopResolver:
    settings: dict[str, object] = {"address_limit": 0, "rng": random.Random(1)}
    settings.update(options)
    return NextHopResolver(["127.0.0.1"], server.port, timeout=2.0, **settings)  # type: ignore[arg-type]


def hosts(result: object) -> list[tuple[int, str]]:
    assert isinstance(result, tuple), result
    return [(destination.preference, destination.host) for destination in result]


def test_mx_in_preference_order_equals_in_seeded_random_order(dnsmasq: Dnsmasq) -> None:
    for seed in range(8):
        expected = ["three.mx.test", "two.mx.test"]
        random.Random(seed).shuffle(expected)
        result = resolver(dnsmasq, rng=random.Random(seed)).resolve("mx.test")
        assert hosts(result) == [(10, "one.mx.test"), *((20, host) for host in expected)]


def test_equal_preferences_come_in_both_orders(dnsmasq: Dnsmasq) -> None:
    orders = {
        tuple(hosts(resolver(dnsmasq, rng=random.Random(seed)).resolve("mx.test"))[1:])
        for seed in range(20)
    }
    assert orders == {
        ((20, "two.mx.test"), (20, "three.mx.test")),
        ((20, "three.mx.test"), (20, "two.mx.test")),
    }


def test_each_mx_host_has_its_a_and_aaaa(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq, address_preference="ipv6").resolve("mx.test")
    assert isinstance(result, tuple)
    by_host = {destination.host: destination.addresses for destination in result}
    assert by_host == {
        "one.mx.test": ("::11", "127.0.0.11"),
        "two.mx.test": ("127.0.0.12",),
        "three.mx.test": ("::13", "127.0.0.13"),
    }
    assert {destination.port for destination in result} == {25}


def test_inet_protocols_and_address_preference(dnsmasq: Dnsmasq) -> None:
    ipv4 = resolver(dnsmasq, inet_protocols="ipv4").resolve("[one.mx.test]")
    assert ipv4 == (Destination(0, "one.mx.test", ("127.0.0.11",), 25),)
    ipv6 = resolver(dnsmasq, inet_protocols="ipv6").resolve("[one.mx.test]")
    assert ipv6 == (Destination(0, "one.mx.test", ("::11",), 25),)
    v4_first = resolver(dnsmasq, address_preference="ipv4").resolve("[one.mx.test]")
    assert v4_first == (Destination(0, "one.mx.test", ("127.0.0.11", "::11"), 25),)
    only_v6 = resolver(dnsmasq, inet_protocols="ipv6").resolve("[two.mx.test]")
    assert only_v6 == DnsFailure("5.4.4", "No address records for two.mx.test")


def test_no_mx_means_the_domains_own_addresses(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq, address_preference="ipv4").resolve("plain.test")
    assert result == (Destination(0, "plain.test", ("127.0.0.20", "::20"), 25),)


def test_null_mx_is_a_permanent_failure(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq).resolve("null.test")
    assert result == DnsFailure("5.1.10", "Recipient address has null MX")
    assert result.permanent


def test_nxdomain_is_a_permanent_failure(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq).resolve("nx.test")
    assert isinstance(result, DnsFailure) and result.permanent
    assert result.status == "5.1.2" and "nx.test" in result.text
    assert resolver(dnsmasq).resolve("[nx.test]") == result


def test_mx_hosts_that_do_not_exist(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq).resolve("ghost.test")
    assert isinstance(result, DnsFailure) and result.status == "5.4.4"


def test_brackets_skip_the_mx_lookup(dnsmasq: Dnsmasq) -> None:
    # mx.test has MX records but no address of its own: [mx.test] must not use the MX hosts
    assert resolver(dnsmasq).resolve("[mx.test]") == DnsFailure(
        "5.4.4", "No address records for mx.test"
    )
    result = resolver(dnsmasq, address_preference="ipv4").resolve("[one.mx.test]:2525")
    assert result == (Destination(0, "one.mx.test", ("127.0.0.11", "::11"), 2525),)


def test_host_port_keeps_the_mx_lookup(dnsmasq: Dnsmasq) -> None:
    result = resolver(dnsmasq).resolve("mx.test:587")
    assert isinstance(result, tuple) and len(result) == 3
    assert {destination.port for destination in result} == {587}


def test_address_literals_need_no_dns() -> None:
    closed = NextHopResolver(["127.0.0.1"], free_port(), timeout=0.3)
    assert closed.resolve("[127.0.0.5]:26") == (Destination(0, "127.0.0.5", ("127.0.0.5",), 26),)
    assert closed.resolve("[ipv6:2001:db8::1]") == (
        Destination(0, "2001:db8::1", ("2001:db8::1",), 25),
    )
    assert closed.queries == 0


def test_mx_address_limit(dnsmasq: Dnsmasq) -> None:
    limited = resolver(dnsmasq, address_limit=2, address_preference="ipv4")
    result = limited.resolve("mx.test")
    assert result == (Destination(10, "one.mx.test", ("127.0.0.11", "::11"), 25),)
    # the first host gave the two addresses allowed: the other hosts are not looked up
    assert limited.queries == 1 + 2


def test_answers_are_cached_for_their_ttl(dnsmasq: Dnsmasq) -> None:
    clock = FakeClock()
    cached = resolver(dnsmasq, clock=clock)
    cached.resolve("mx.test")
    queries = cached.queries
    assert queries == 1 + 3 * 2  # MX, then A and AAAA for each of three hosts
    clock.now += LOCAL_TTL - 1
    assert hosts(cached.resolve("mx.test")) != []
    # only two.mx.test's AAAA is asked again: dnsmasq sends its NODATA without an SOA, and a
    # negative answer without one is not cached (RFC 2308)
    assert cached.queries == queries + 1
    assert cached.cache.hits == 6
    clock.now += 2  # past the TTL: asked again
    cached.resolve("mx.test")
    assert cached.queries == 2 * queries + 1


def test_the_cache_is_bounded(dnsmasq: Dnsmasq) -> None:
    small = resolver(dnsmasq, cache_size=2)
    small.resolve("mx.test")
    assert len(small.cache) == 2
    none = resolver(dnsmasq, cache_size=0)
    none.resolve("plain.test")
    none.resolve("plain.test")
    assert len(none.cache) == 0 and none.queries == 6


@pytest.mark.parametrize("nexthop", ["mx.test", "[one.mx.test]", "plain.test"])
def test_timeouts_are_temporary_failures(nexthop: str) -> None:
    closed = NextHopResolver(["127.0.0.1"], free_port(), timeout=0.5)
    result = closed.resolve(nexthop)
    assert isinstance(result, DnsFailure) and not result.permanent
    assert result.status == "4.4.3"
    assert len(closed.cache) == 0  # temporary failures are never cached


def test_refused_is_a_temporary_failure(dnsmasq: Dnsmasq) -> None:
    # dnsmasq has no upstream server: a name outside .test is REFUSED
    result = resolver(dnsmasq).resolve("example.org")
    assert isinstance(result, DnsFailure) and result.status == "4.4.3"


def test_bad_next_hops_are_permanent_failures(dnsmasq: Dnsmasq) -> None:
    for nexthop in ["", "[unclosed", "host:99999", "a" * 300, "x..y"]:
        result = resolver(dnsmasq).resolve(nexthop)
        assert isinstance(result, DnsFailure) and result.permanent, nexthop


def test_from_settings(dnsmasq: Dnsmasq) -> None:
    parameters = dict(BUILTIN_DEFAULTS)
    parameters.update(
        smtp_dns_resolver_address="127.0.0.1",
        smtp_dns_resolver_port=str(dnsmasq.port),
        smtp_dns_resolver_timeout="2s",
        inet_protocols="ipv4",
    )
    configured = NextHopResolver.from_settings(Settings(parameters), rng=random.Random(3))
    result = configured.resolve("plain.test")
    assert result == (Destination(0, "plain.test", ("127.0.0.20",), 25),)


def test_dns_support_level_disabled_uses_native_lookups_and_no_mx(dnsmasq: Dnsmasq) -> None:
    native = resolver(dnsmasq, support_level="disabled", inet_protocols="ipv4")
    # mx.test has MX records in DNS, but disabled means no DNS at all: the system's lookup
    # (/etc/hosts) knows neither mx.test nor its MX hosts
    assert native.resolve("mx.test") == DnsFailure(
        "5.1.2", "Host or domain name not found: mx.test"
    )
    assert native.resolve("localhost:2525") == (Destination(0, "localhost", ("127.0.0.1",), 2525),)
    assert native.queries == 0 and len(native.cache) == 0


def test_an_unknown_dns_support_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="smtp_dns_support_level"):
        NextHopResolver(["127.0.0.1"], 53, support_level="paranoid")


def test_a_resolver_that_does_not_validate_gives_no_secure_destination(dnsmasq: Dnsmasq) -> None:
    # dnsmasq here does no DNSSEC: asked with DO and AD, it answers without AD
    result = resolver(dnsmasq, support_level="dnssec").resolve("mx.test")
    assert isinstance(result, tuple) and len(result) == 3
    assert not any(destination.secure for destination in result)


def test_the_cache_is_safe_across_threads() -> None:
    # the smtp agent resolves in worker threads. Here another thread evicts the very entry a
    # lookup is expiring, at the worst moment (while get() reads the clock): with the lock it
    # waits its turn; without it, get() would delete an entry that is already gone.
    racing: list[threading.Thread] = []

    class RacingClock:
        now = 1000.0

        def __call__(self) -> float:
            if not racing:
                racing.append(
                    threading.Thread(target=cache.put, args=(("b.test", 1), Answer(()), 60))
                )
                racing[0].start()
                racing[0].join(0.2)  # with the lock, the evicting put cannot finish now
            return self.now

    clock = RacingClock()
    cache = AnswerCache(1, clock)
    cache._entries[("a.test", 1)] = (clock.now - 1, Answer(("127.0.0.1",)))  # expired
    assert cache.get(("a.test", 1)) is None
    racing[0].join()
    assert list(cache._entries) == [("b.test", 1)]
