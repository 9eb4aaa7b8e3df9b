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
returned in all (0: no limit); hosts left without an address are dropped, and MX hosts past
the limit are not looked up at all.

Failures are results, not exceptions: NXDOMAIN for the domain is permanent (5.1.2 host not
found), as is a domain with neither MX nor address records, or MX hosts that do not exist
(5.4.4); SERVFAIL, REFUSED, timeouts and other resolver errors are temporary (4.4.3), and so is
a mix of missing and unreachable MX hosts.

DNSSEC (smtp_dns_support_level = dnssec, as in Postfix): queries carry the DO and AD bits and
each answer remembers whether the configured resolver set AD in its reply, i.e. validated it.
The resolver is trusted as Postfix trusts it: it must be a validating resolver on a trusted
path (loopback). A Destination is `secure` when the MX RRset (or, for an implicit MX, its
secure denial) and every address RRset of the host were validated; DANE (mta.smtp.dane) is
only used for secure destinations. At any other level no DNSSEC is asked for and `secure` is
always False. `disabled` skips DNS: no MX lookups, and addresses from the system's native
lookup (getaddrinfo: /etc/hosts, then whatever nsswitch says), not cached here.

Answers are cached for their TTL (negative answers for the SOA's negative TTL when the server
sends one); at most smtp_dns_cache_size entries, the least recently used leaving first;
temporary failures are never cached. The clock is injectable for tests.

Parameters (defaults in mta.config.table): smtp_dns_resolver_address (empty: the system's
/etc/resolv.conf), smtp_dns_resolver_port, smtp_dns_resolver_timeout, smtp_dns_cache_size,
smtp_dns_support_level, inet_protocols, smtp_address_preference, smtp_mx_address_limit.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import dns.exception
import dns.flags
import dns.message
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
EDNS_PAYLOAD = 1232  # the DNS flag day 2020 UDP size: signed answers fit without fragments

SupportLevel = Literal["disabled", "enabled", "dnssec"]
SUPPORT_LEVELS: dict[str, SupportLevel] = {
    "": "enabled",  # Postfix: empty means disable_dns_lookups decides; mta has no such knob
    "disabled": "disabled",
    "enabled": "enabled",
    "dnssec": "dnssec",
}

Family = Literal["ipv4", "ipv6"]
_RDTYPE: dict[Family, dns.rdatatype.RdataType] = {
    "ipv4": dns.rdatatype.A,
    "ipv6": dns.rdatatype.AAAA,
}
_SOCKET_FAMILY: dict[Family, socket.AddressFamily] = {
    "ipv4": socket.AF_INET,
    "ipv6": socket.AF_INET6,
}


@dataclass(frozen=True, slots=True)
class Destination:
    """One host to try: its MX preference, name and addresses, and the port to connect to.

    secure: the MX lookup (when there was one) and the host's address lookups were all
    validated by the configured DNSSEC resolver (smtp_dns_support_level = dnssec only).
    """

    preference: int
    host: str
    addresses: tuple[str, ...]
    port: int = SMTP_PORT
    secure: bool = False


@dataclass(frozen=True, slots=True)
class DnsFailure:
    """Why no host can be tried: an enhanced status code (5.x.x permanent) and a text."""

    status: str
    text: str

    @property
    def permanent(self) -> bool:
        return self.status.startswith("5")


Resolution = tuple[Destination, ...] | DnsFailure


class DnsTemporaryError(Exception):
    """A lookup that may succeed later: SERVFAIL, REFUSED, timeout, no usable name server.

    A validating resolver answers SERVFAIL for a bogus (badly signed) RRset, so that too.
    """


@dataclass(frozen=True, slots=True)
class Answer:
    """A cacheable answer: records as text, or none (nxdomain: the name does not exist).

    secure: the resolver set the AD bit (asked for only at smtp_dns_support_level = dnssec).
    canonical: the name the records belong to after CNAMEs, when that is not the name asked.
    """

    records: tuple[str, ...]
    nxdomain: bool = False
    secure: bool = False
    canonical: str = ""


@dataclass(frozen=True, slots=True)
class _Mx:
    preference: int
    host: str


class AnswerCache:
    """(name, type) -> answer until its TTL ends; bounded, least recently used first out.

    Thread-safe: the SMTP client runs its lookups in worker threads (asyncio.to_thread).
    """

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.clock = clock
        self._entries: OrderedDict[tuple[str, int], tuple[float, Answer]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, int]) -> Answer | None:
        with self._lock:
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

    def put(self, key: tuple[str, int], answer: Answer, ttl: int) -> None:
        if self.size <= 0 or ttl <= 0:
            return
        with self._lock:
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


def _authenticated(response: dns.message.Message | None) -> bool:
    return response is not None and bool(response.flags & dns.flags.AD)


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
        support_level: str = "enabled",
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
        level = SUPPORT_LEVELS.get(support_level.strip())
        if level is None:
            raise ConfigError(f"smtp_dns_support_level = {support_level}: unknown")
        self.support_level: SupportLevel = level
        if level == "dnssec":
            # DO asks for DNSSEC records, which a validating resolver needs to tell us about
            # validation at all; AD in a query asks for the AD bit in the reply (RFC 6840 5.7)
            self._resolver.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
            self._resolver.flags = dns.flags.RD | dns.flags.AD
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
            support_level=settings.get("smtp_dns_support_level"),
        )

    @property
    def dnssec(self) -> bool:
        """True when answers are asked to be validated (smtp_dns_support_level = dnssec)."""
        return self.support_level == "dnssec"

    # -- lookups ---------------------------------------------------------------------------

    def lookup(self, name: str, rdtype: dns.rdatatype.RdataType) -> Answer:
        """Records of one type for a name, from the cache or a name server.

        Raises DnsTemporaryError for a failure that may pass, dns.exception.DNSException
        (permanent) for a name that cannot be sent at all.
        """
        key = (name, int(rdtype))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        qname = dns.name.from_text(name)  # a bad name raises here: a permanent failure
        self.queries += 1
        try:
            answer = self._resolver.resolve(qname, rdtype, search=False, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as error:
            responses = list(error.responses().values())  # type: ignore[no-untyped-call]
            response = responses[0] if responses else None
            result = Answer((), nxdomain=True, secure=self.dnssec and _authenticated(response))
            self.cache.put(key, result, _negative_ttl(response))
            return result
        except dns.exception.DNSException as error:
            raise DnsTemporaryError(str(error) or type(error).__name__) from None
        secure = self.dnssec and _authenticated(answer.response)
        canonical = answer.canonical_name.to_text(omit_final_dot=True).lower()
        canonical = "" if canonical == name.rstrip(".").lower() else canonical
        if answer.rrset is None:
            result = Answer((), secure=secure, canonical=canonical)
            self.cache.put(key, result, _negative_ttl(answer.response))
            return result
        result = Answer(
            tuple(rdata.to_text() for rdata in answer.rrset), secure=secure, canonical=canonical
        )
        self.cache.put(key, result, answer.rrset.ttl)
        return result

    def _mx_records(self, domain: str) -> tuple[tuple[_Mx, ...], bool] | None:
        """MX records sorted by preference, equals shuffled, and whether the answer was
        validated; None if the name does not exist."""
        answer = self.lookup(domain, dns.rdatatype.MX)
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
        return tuple(records), answer.secure

    def _host_addresses(self, host: str) -> tuple[tuple[str, ...], bool] | None:
        """A host's addresses in the order to try and whether every address answer used was
        validated; None if the host does not exist.

        Raises DnsTemporaryError when no family answered and one failed for now.
        """
        if self.support_level == "disabled":
            return self._native_addresses(host)
        found: list[str] = []
        exists = False
        secure = True
        for answer in self._family_answers(host):
            exists = exists or not answer.nxdomain
            secure = secure and answer.secure
            found += [address for address in answer.records if address not in found]
        if self.shuffle_families:
            self.rng.shuffle(found)
        return (tuple(found), secure and self.dnssec) if exists else None

    def _native_addresses(self, host: str) -> tuple[tuple[str, ...], bool] | None:
        """smtp_dns_support_level = disabled: the system's own lookup, never secure."""
        found: list[str] = []
        for family in self.families:
            try:
                infos = socket.getaddrinfo(host, None, _SOCKET_FAMILY[family], socket.SOCK_STREAM)
            except socket.gaierror as error:
                if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)):
                    continue
                raise DnsTemporaryError(f"native lookup: {error.strerror}") from None
            except (UnicodeError, ValueError):  # a name the system refuses: no such host
                return None
            for info in infos:
                address = str(info[4][0])
                if address not in found:
                    found.append(address)
        if not found:
            return None
        if self.shuffle_families:
            self.rng.shuffle(found)
        return tuple(found), False

    def host_alias(self, host: str) -> tuple[str, bool]:
        """The name a host's address records belong to after CNAMEs, and whether that
        expansion was validated: (host, secure) when there is no CNAME (RFC 7672 2.2.2).

        Uses the cached address answers when there are any. Raises DnsTemporaryError when
        every family failed for now.
        """
        for answer in self._family_answers(host):
            if answer.records and not answer.nxdomain:
                return answer.canonical or host, answer.secure
        return host, False

    def _family_answers(self, host: str) -> Iterator[Answer]:
        """The address answer of each family (self.families order) for host, looked up as
        they are asked for. A family whose lookup failed for now is passed over; when no
        family answered with records, the last such DnsTemporaryError is raised at the end."""
        failure: DnsTemporaryError | None = None
        records = False
        for family in self.families:
            try:
                answer = self.lookup(host, _RDTYPE[family])
            except DnsTemporaryError as error:
                failure = error
                continue
            records = records or bool(answer.records)
            yield answer
        if failure is not None and not records:
            raise failure

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
            if parsed.mx_lookup and self.support_level != "disabled":
                return self._resolve_mx(parsed.host, parsed.port)
            return self._resolve_host(parsed.host, parsed.port)
        except DnsTemporaryError as error:
            return DnsFailure(
                "4.4.3", f"Host or domain name lookup failed for {parsed.host}: {error}"
            )
        except dns.exception.DNSException as error:  # a name dnspython refuses: too long, ...
            return DnsFailure("5.1.2", f"Bad host or domain name {parsed.host}: {error}")

    def _resolve_host(
        self, host: str, port: int, preference: int = 0, mx_secure: bool = True
    ) -> Resolution:
        found = self._host_addresses(host)
        if found is None:
            return DnsFailure("5.1.2", f"Host or domain name not found: {host}")
        addresses, secure = found
        if not addresses:
            return DnsFailure("5.4.4", f"No address records for {host}")
        return self._limited(
            (Destination(preference, host, addresses, port, secure and mx_secure),)
        )

    def _resolve_mx(self, domain: str, port: int) -> Resolution:
        found = self._mx_records(domain)
        if found is None:
            return DnsFailure("5.1.2", f"Host or domain name not found: {domain}")
        records, mx_secure = found
        if len(records) == 1 and records[0].host == ".":
            return DnsFailure("5.1.10", "Recipient address has null MX")
        records = tuple(record for record in records if record.host != ".")
        if not records:  # no MX: the domain itself is the implicit MX (RFC 5321 5.1)
            # secure only if the absence of MX records was itself validated (RFC 7672 2.2.1)
            return self._resolve_host(domain, port, IMPLICIT_MX_PREFERENCE, mx_secure)
        destinations: list[Destination] = []
        temporary: DnsTemporaryError | None = None
        found_addresses = 0
        for record in records:
            if 0 < self.address_limit <= found_addresses:
                break  # _limited() would drop every later host: no lookups for them
            try:
                host_found = self._host_addresses(record.host)
            except DnsTemporaryError as error:
                temporary = error
                continue
            if host_found is not None and host_found[0]:
                addresses, secure = host_found
                found_addresses += len(addresses)
                destinations.append(
                    Destination(
                        record.preference, record.host, addresses, port, secure and mx_secure
                    )
                )
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
            kept.append(replace(destination, addresses=addresses))
        return tuple(kept)
