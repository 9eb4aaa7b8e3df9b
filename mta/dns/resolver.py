"""Resolve a next hop to the hosts and addresses the SMTP client tries, in order.

    resolver = NextHopResolver.from_settings(settings)
    resolver.resolve("example.com")
        -> (Destination(10, "mx1.example.com", ("192.0.2.1", "2001:db8::1"), 25), ...)
        |  DnsFailure("5.1.10", "Recipient address has null MX")

As Postfix's smtp(8) does:

  * a domain: its MX records in preference order, hosts of equal preference in random order
    (the `rng` argument makes that order repeatable in tests); RFC 7505's null MX (`0 .`) is
    a permanent failure (5.1.10); no MX records: the domain's own A/AAAA records, as an
    implicit MX of preference 0 (RFC 5321 5.1);
  * `[host]` or `[host]:port`: no MX lookup, the host's own A/AAAA records;
  * `[address]` or an address: that address, no DNS at all;
  * `host:port`: MX lookup as for a domain, then that port.

Each host's addresses come from A and/or AAAA as inet_protocols allows, the family named by
smtp_address_preference first (any: random order). At most smtp_mx_address_limit addresses are
returned in all (0: no limit); hosts left without an address are dropped.

Failures are results, not exceptions: NXDOMAIN for the domain is permanent (5.1.2 host not
found), as is a domain with neither MX nor address records, or MX hosts that do not exist
(5.4.4); SERVFAIL, REFUSED, timeouts and other resolver errors are temporary (4.4.3), and so is
a mix of missing and unreachable MX hosts.

Answers are cached for their TTL (negative answers for the SOA's negative TTL when the server
sends one); at most smtp_dns_cache_size entries, the least recently used leaving first;
temporary failures are never cached. The clock is injectable for tests.

Parameters (defaults in mta.config.table): smtp_dns_resolver_address (empty: the system's
/etc/resolv.conf), smtp_dns_resolver_port, smtp_dns_resolver_timeout, smtp_dns_cache_size,
inet_protocols, smtp_address_preference, smtp_mx_address_limit.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mta.config.errors import ConfigError
from mta.config.maincf import Settings
from mta.config.values import duration, number, word_list
from mta.dns.nexthop import SMTP_PORT, address_or_none, parse_nexthop

MAX_MX_RECORDS = 100  # more MX records than any real domain publishes; the rest are ignored
MAX_CACHE_TTL = 86400  # a day, whatever the zone says
IMPLICIT_MX_PREFERENCE = 0

Family = Literal["ipv4", "ipv6"]
_RDTYPE: dict[Family, dns.rdatatype.RdataType] = {
    "ipv4": dns.rdatatype.A,
    "ipv6": dns.rdatatype.AAAA,
}


@dataclass(frozen=True, slots=True)
class Destination:
    """One host to try: its MX preference, name and addresses, and the port to connect to."""

    preference: int
    host: str
    addresses: tuple[str, ...]
    port: int = SMTP_PORT


@dataclass(frozen=True, slots=True)
class DnsFailure:
    """Why no host can be tried: an enhanced status code (5.x.x permanent) and a text."""

    status: str
    text: str

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


Resolution = tuple[Destination, ...] | DnsFailure


class _TemporaryError(Exception):
    """A lookup that may succeed later: SERVFAIL, REFUSED, timeout, no usable name server."""


@dataclass(frozen=True, slots=True)
class _Answer:
    """A cacheable answer: records as text, or none (nxdomain: the name does not exist)."""

    records: tuple[str, ...]
    nxdomain: bool = False


@dataclass(frozen=True, slots=True)
class _Mx:
    preference: int
    host: str


class AnswerCache:
    """(name, type) -> answer until its TTL ends; bounded, least recently used first out."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[tuple[str, int], tuple[float, _Answer]] = OrderedDict()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, int]) -> _Answer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, answer = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return answer

    def put(self, key: tuple[str, int], answer: _Answer, ttl: int) -> None:
        if self.size <= 0 or ttl <= 0:
            return
        self._entries[key] = (self.clock() + min(ttl, MAX_CACHE_TTL), answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)


def _negative_ttl(response: dns.message.Message | None) -> int:
    """RFC 2308: the smaller of the SOA's TTL and its minimum field; 0 without an SOA."""
    if response is None:
        return 0
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return 0


def _families(inet_protocols: str, preference: str) -> tuple[Family, ...]:
    words = inet_protocols.replace(",", " ").split()
    families: list[Family] = []
    for word in words:
        if word == "all":
            families += ["ipv4", "ipv6"]
        elif word in ("ipv4", "ipv6"):
            families.append("ipv4" if word == "ipv4" else "ipv6")
        else:
            raise ConfigError(f"inet_protocols = {inet_protocols}: unknown family {word!r}")
    unique = tuple(dict.fromkeys(families))
    if not unique:
        raise ConfigError(f"inet_protocols = {inet_protocols}: no address family")
    first = [family for family in unique if family == preference]
    return (*first, *(family for family in unique if family != preference))


class NextHopResolver:
    """MX, A and AAAA lookups for the SMTP client, with a TTL cache; see the module text."""

    def __init__(
        self,
        nameservers: Sequence[str] = (),
        port: int = 53,
        timeout: float = 10.0,
        cache_size: int = 1000,
        inet_protocols: str = "all",
        address_preference: str = "any",
        address_limit: int = 5,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if nameservers:
            for address in nameservers:
                if address_or_none(address) is None:
                    raise ConfigError(
                        f"smtp_dns_resolver_address: {address!r} is not an IP address"
                    )
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
            self._resolver.port = port
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.timeout = timeout
        self._resolver.lifetime = timeout
        self._resolver.retry_servfail = False
        if address_preference not in ("any", "ipv4", "ipv6"):
            raise ConfigError(f"smtp_address_preference = {address_preference}: unknown")
        self.families = _families(inet_protocols, address_preference)
        self.shuffle_families = address_preference == "any"
        self.address_limit = address_limit
        self.rng = rng if rng is not None else random.Random()
        self.cache = AnswerCache(cache_size, clock)
        self.queries = 0  # lookups sent to a name server (not answered from the cache)

    @classmethod
    def from_settings(cls, settings: Settings, rng: random.Random | None = None) -> NextHopResolver:
        return cls(
            nameservers=word_list(settings, "smtp_dns_resolver_address"),
            port=number(settings, "smtp_dns_resolver_port", minimum=1),
            timeout=duration(settings, "smtp_dns_resolver_timeout"),
            cache_size=number(settings, "smtp_dns_cache_size"),
            inet_protocols=settings.get("inet_protocols"),
            address_preference=settings.get("smtp_address_preference").strip(),
            address_limit=number(settings, "smtp_mx_address_limit"),
            rng=rng,
        )

    # -- lookups ---------------------------------------------------------------------------

    def _lookup(self, name: str, rdtype: dns.rdatatype.RdataType) -> _Answer:
        """Records of one type for a name, from the cache or a name server."""
        key = (name, int(rdtype))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        qname = dns.name.from_text(name)  # a bad name raises here: a permanent failure
        self.queries += 1
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as error:
            result = _Answer((), nxdomain=True)
            responses = list(error.responses().values())  # type: ignore[no-untyped-call]
            self.cache.put(key, result, _negative_ttl(responses[0] if responses else None))
            return result
        except dns.exception.DNSException as error:
            raise _TemporaryError(str(error) or type(error).__name__) from None
        if answer.rrset is None:
            result = _Answer(())
            self.cache.put(key, result, _negative_ttl(answer.response))
            return result
        result = _Answer(tuple(rdata.to_text() for rdata in answer.rrset))
        self.cache.put(key, result, answer.rrset.ttl)
        return result

    def _mx_records(self, domain: str) -> tuple[_Mx, ...] | None:
        """MX records sorted by preference, equals shuffled; None if the name does not exist."""
        answer = self._lookup(domain, dns.rdatatype.MX)
        if answer.nxdomain:
            return None
        by_preference: dict[int, list[str]] = {}
        for text in answer.records[:MAX_MX_RECORDS]:
            number_text, _, host = text.partition(" ")
            hosts = by_preference.setdefault(int(number_text), [])
            host = host.rstrip(".").lower() or "."
            if host not in hosts:
                hosts.append(host)
        records: list[_Mx] = []
        for preference in sorted(by_preference):
            hosts = sorted(by_preference[preference])
            self.rng.shuffle(hosts)
            records += [_Mx(preference, host) for host in hosts]
        return tuple(records)

    def addresses(self, host: str) -> tuple[str, ...] | None:
        """A host's addresses in the order to try; None if it does not exist.

        Raises _TemporaryError when no family answered and one failed for now.
        """
        found: list[str] = []
        exists = False
        failure: _TemporaryError | None = None
        for family in self.families:
            try:
                answer = self._lookup(host, _RDTYPE[family])
            except _TemporaryError as error:
                failure = error
                continue
            exists = exists or not answer.nxdomain
            found += [address for address in answer.records if address not in found]
        if not found and failure is not None:
            raise failure
        if self.shuffle_families:
            self.rng.shuffle(found)
        return tuple(found) if exists else None

    # -- the next hop ----------------------------------------------------------------------

    def resolve(self, nexthop: str, default_port: int = SMTP_PORT) -> Resolution:
        """The hosts to try for a next hop, in order, or why there are none."""
        try:
            parsed = parse_nexthop(nexthop, default_port)
        except ValueError as error:
            return DnsFailure("5.1.2", f"bad next hop: {error}")
        if parsed.is_address:
            return (Destination(IMPLICIT_MX_PREFERENCE, parsed.host, (parsed.host,), parsed.port),)
        try:
            if parsed.mx_lookup:
                return self._resolve_mx(parsed.host, parsed.port)
            return self._resolve_host(parsed.host, parsed.port)
        except _TemporaryError as error:
            return DnsFailure(
                "4.4.3", f"Host or domain name lookup failed for {parsed.host}: {error}"
            )
        except dns.exception.DNSException as error:  # a name dnspython refuses: too long, ...
            return DnsFailure("5.1.2", f"Bad host or domain name {parsed.host}: {error}")

    def _resolve_host(self, host: str, port: int, preference: int = 0) -> Resolution:
        addresses = self.addresses(host)
        if addresses is None:
            return DnsFailure("5.1.2", f"Host or domain name not found: {host}")
        if not addresses:
            return DnsFailure("5.4.4", f"No address records for {host}")
        return self._limited((Destination(preference, host, addresses, port),))

    def _resolve_mx(self, domain: str, port: int) -> Resolution:
        records = self._mx_records(domain)
        if records is None:
            return DnsFailure("5.1.2", f"Host or domain name not found: {domain}")
        if len(records) == 1 and records[0].host == ".":
            return DnsFailure("5.1.10", "Recipient address has null MX")
        records = tuple(record for record in records if record.host != ".")
        if not records:  # no MX: the domain itself is the implicit MX (RFC 5321 5.1)
            return self._resolve_host(domain, port, IMPLICIT_MX_PREFERENCE)
        destinations: list[Destination] = []
        temporary: _TemporaryError | None = None
        for record in records:
            try:
                addresses = self.addresses(record.host)
            except _TemporaryError as error:
                temporary = error
                continue
            if addresses:
                destinations.append(Destination(record.preference, record.host, addresses, port))
        if destinations:
            return self._limited(tuple(destinations))
        if temporary is not None:
            raise temporary
        return DnsFailure("5.4.4", f"No address records for the MX hosts of {domain}")

    def _limited(self, destinations: tuple[Destination, ...]) -> tuple[Destination, ...]:
        """At most smtp_mx_address_limit addresses in all, in order (0: no limit)."""
        if self.address_limit <= 0:
            return destinations
        left = self.address_limit
        kept: list[Destination] = []
        for destination in destinations:
            if left <= 0:
                break
            addresses = destination.addresses[:left]
            left -= len(addresses)
            kept.append(
                Destination(destination.preference, destination.host, addresses, destination.port)
            )
        return tuple(kept)
