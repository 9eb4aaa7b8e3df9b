"""Resolve a recipient to its address class and transport:nexthop, as trivial-rewrite(8) does.

    resolver = Resolver.from_settings(settings)
    resolver.route("user@example.com")
        -> Route("default", "smtp", "example.com", "user@example.com") | TemporaryFailure

The address is canonicalised first (mta.rewrite.canonical). While its domain is ours and its
local part still routes (an @, a ! with swap_bangpath, a % with allow_percent_hack), the domain
is dropped and the local part canonicalised again: user%remote@ours -> user@remote, and
remote!user@ours -> user@remote. Then the first class that fits:

  class    domain                                  transport          default nexthop
  local    mydestination, or an [address literal]  local_transport    $myhostname
           of inet_interfaces; no domain at all
  alias    virtual_alias_domains                   error              5.1.1 User unknown in
           (an address there must have been                           virtual alias table
           aliased before it is resolved)
  virtual  virtual_mailbox_domains                 virtual_transport  the domain
  relay    relay_domains                           relay_transport    $relayhost or the domain
  default  anything else                           default_transport  $relayhost or the domain

A transport written as transport:nexthop gives its own next hop. transport_maps then overrides
(transport(5)): the keys are the full address, the address without its extension, the domain,
then each parent as .parent (pattern tables see only the full address), and `*` last. A result
`transport:nexthop` replaces both; `transport` or `transport:` replaces the transport and
makes the recipient's domain the next hop; `:nexthop` keeps the transport; `:` or an empty
result keeps both. Next hops are kept as written, [brackets] and :port included.

A table that cannot answer makes the result a TemporaryFailure (the caller defers the
recipient with a 4xx and logs the reason), never an exception.

Parameters (defaults in mta.config.table): myhostname, mydestination, inet_interfaces,
virtual_alias_domains, virtual_mailbox_domains, relay_domains, local_transport,
virtual_transport, relay_transport, default_transport, relayhost, transport_maps,
recipient_delimiter, and canonicalise's (swap_bangpath, allow_percent_hack, ...).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mta.config.maincf import ConfigError, Settings
from mta.config.values import check_transport, interface_addresses
from mta.maps import TableUnavailable
from mta.maps.address import split_extension
from mta.rewrite.canonical import Canonicaliser
from mta.rewrite.tables import DomainList, MapList

ALIAS_DOMAIN_REASON = "5.1.1 User unknown in virtual alias table"
ERROR_TRANSPORTS = frozenset({"error", "retry"})
UNDELIVERABLE_NEXTHOP = "Address is undeliverable"  # Postfix's, for error: without a text
MAX_LOCAL_ROUTING = 100  # user%a%b...@ours is re-resolved once per hop; real mail has one or two


@dataclass(frozen=True, slots=True)
class TemporaryFailure:
    """A table could not answer: defer with a 4xx; `reason` is the one-line log text."""

    reason: str


@dataclass(frozen=True, slots=True)
class Route:
    """Where a recipient goes: address class, transport, next hop, and the address to deliver
    to (the input canonicalised, with user%domain@ours routing resolved)."""

    address_class: str
    transport: str
    nexthop: str
    address: str


def split_transport(parameter: str, value: str) -> tuple[str, str]:
    """(transport, nexthop) of a main.cf transport value; a bad one is a ConfigError."""
    check_transport(value, parameter)
    transport, _, nexthop = value.strip().partition(":")
    return transport, nexthop


def _interface_literals(settings: Settings) -> frozenset[str]:
    """[address] literals of inet_interfaces; `all` counts the loopback addresses only (the
    host's other interface addresses are not enumerated)."""
    addresses = interface_addresses(settings.get("inet_interfaces"))
    if addresses == ["0.0.0.0", "::"]:
        addresses = ["127.0.0.1", "::1"]
    literals = set()
    for address in addresses:
        ip = ipaddress.ip_address(address)
        literals.add(f"[{ip}]" if ip.version == 4 else f"[ipv6:{ip}]")
    return frozenset(literals)


def address_literal_key(domain: str) -> str:
    """An [address literal] in one spelling, to compare with inet_interfaces; else domain."""
    inner = domain[1:-1]
    version_tag = "ipv6:" if inner.lower().startswith("ipv6:") else ""
    try:
        ip = ipaddress.ip_address(inner[len(version_tag) :])
    except ValueError:
        return domain
    return f"[ipv6:{ip}]" if ip.version == 6 else f"[{ip}]"


@dataclass(frozen=True, slots=True)
class Resolver:
    canonicaliser: Canonicaliser
    myhostname: str
    mydestination: DomainList
    interface_literals: frozenset[str]
    virtual_alias_domains: DomainList
    virtual_mailbox_domains: DomainList
    relay_domains: DomainList
    local_transport: tuple[str, str]
    virtual_transport: tuple[str, str]
    relay_transport: tuple[str, str]
    default_transport: tuple[str, str]
    relayhost: str
    transport_maps: MapList
    recipient_delimiter: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        def transport(name: str) -> tuple[str, str]:
            try:
                return split_transport(name, settings.get(name))
            except ConfigError as error:
                raise ConfigError(f"{settings.where(name)}{error}") from None

        return cls(
            canonicaliser=Canonicaliser.from_settings(settings),
            myhostname=settings.get("myhostname").strip(),
            mydestination=DomainList("mydestination", settings.get("mydestination")),
            interface_literals=_interface_literals(settings),
            virtual_alias_domains=DomainList(
                "virtual_alias_domains", settings.get("virtual_alias_domains")
            ),
            virtual_mailbox_domains=DomainList(
                "virtual_mailbox_domains", settings.get("virtual_mailbox_domains")
            ),
            relay_domains=DomainList("relay_domains", settings.get("relay_domains")),
            local_transport=transport("local_transport"),
            virtual_transport=transport("virtual_transport"),
            relay_transport=transport("relay_transport"),
            default_transport=transport("default_transport"),
            relayhost=settings.get("relayhost").strip(),
            transport_maps=MapList("transport_maps", settings.get("transport_maps")),
            recipient_delimiter=settings.get("recipient_delimiter"),
        )

    def is_local(self, domain: str) -> bool:
        """Postfix's resolve_local: mydestination, or a literal of our interfaces. Raises
        TableUnavailable when mydestination holds a table that cannot answer."""
        if domain.startswith("[") and domain.endswith("]"):
            return address_literal_key(domain).lower() in self.interface_literals
        return self.mydestination.matches(domain)

    def is_alias_domain(self, domain: str) -> bool:
        """A virtual alias domain that is not also local (local wins, as in resolve)."""
        return (
            bool(self.virtual_alias_domains)
            and not self.is_local(domain)
            and self.virtual_alias_domains.matches(domain)
        )

    def route(self, address: str) -> Route | TemporaryFailure:
        try:
            return self._route(address)
        except TableUnavailable as error:
            return TemporaryFailure(f"address resolver lookup problem for {address}: {error}")

    def _route(self, address: str) -> Route:
        canonicaliser = self.canonicaliser
        address = canonicaliser.canonicalise(address)
        local, at, domain = address.rpartition("@")
        for _hop in range(MAX_LOCAL_ROUTING):
            if not at or not self.is_local(domain) or not self._routes_on(local):
                break
            address = canonicaliser.canonicalise(local)
            local, at, domain = address.rpartition("@")
        if not at:
            domain = ""
        if not domain or self.is_local(domain):
            address_class = "local"
            transport, nexthop = self.local_transport
            default_nexthop = self.myhostname
        elif self.virtual_alias_domains.matches(domain):
            return Route("alias", "error", ALIAS_DOMAIN_REASON, address)
        elif self.virtual_mailbox_domains.matches(domain):
            address_class = "virtual"
            transport, nexthop = self.virtual_transport
            default_nexthop = domain
        else:
            if self.relay_domains.matches(domain):
                address_class = "relay"
                transport, nexthop = self.relay_transport
            else:
                address_class = "default"
                transport, nexthop = self.default_transport
            default_nexthop = self.relayhost or domain
        nexthop = nexthop or default_nexthop
        if self.transport_maps:
            transport, nexthop = self._transport_map(
                address, domain or self.myhostname, transport, nexthop
            )
        return Route(address_class, transport, nexthop, address)

    def _routes_on(self, local: str) -> bool:
        """Whether a local part still carries routing that resolve strips our domain for."""
        canonicaliser = self.canonicaliser
        return (
            "@" in local
            or (canonicaliser.swap_bangpath and "!" in local)
            or (canonicaliser.allow_percent_hack and "%" in local)
        )

    def _transport_map(
        self, address: str, domain: str, transport: str, nexthop: str
    ) -> tuple[str, str]:
        """transport(5): the first entry for the address, the domain, a parent, or `*`."""
        maps = self.transport_maps
        value = maps.find(address)
        local, at, address_domain = address.rpartition("@")
        if value is None and at:
            user, extension = split_extension(local, self.recipient_delimiter)
            if extension is not None:
                value = maps.find(f"{user}@{address_domain}", partial=True)
        if value is None:
            value = self._domain_entry(domain)
        if value is None:
            value = maps.find("*", partial=True)
        if value is None:
            return transport, nexthop
        new_transport, _, new_nexthop = value.strip().partition(":")
        new_transport, new_nexthop = new_transport.strip(), new_nexthop.strip()
        if not new_transport:
            return transport, new_nexthop or nexthop
        if new_nexthop:
            return new_transport, new_nexthop
        if new_transport in ERROR_TRANSPORTS:
            return new_transport, UNDELIVERABLE_NEXTHOP
        return new_transport, domain

    def _domain_entry(self, domain: str) -> str | None:
        maps = self.transport_maps
        name = domain.lower()
        value = maps.find(name, partial=True)
        parent = name.find(".")
        while value is None and parent >= 0:
            value = maps.find(name[parent:], partial=True)
            parent = name.find(".", parent + 1)
        return value
