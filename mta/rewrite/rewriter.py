"""Envelope address rewriting, as cleanup(8) does it for mail that smtpd receives.

    rewriter = AddressRewriter.from_settings(settings)
    rewriter.sender("user@host.example.com")  -> "user@example.com" | TemporaryFailure
    rewriter.recipient("info@example.com")    -> ("bob@example.net", ...)
                                                 | UserUnknown | TemporaryFailure

Sender: canonicalise, sender_canonical_maps, canonical_maps, masquerade_domains. The null
sender stays null.
Recipient: canonicalise, recipient_canonical_maps, canonical_maps, masquerade_domains (only
with envelope_recipient in masquerade_classes, not by default), then virtual_alias_maps.
Each map applies only to the classes its *_classes parameter names (envelope_sender,
envelope_recipient, header_sender, header_recipient).
Header addresses (header_address(), for mta.cleanup): the canonical maps of the header class,
then masquerade_domains when masquerade_classes names it; they are not canonicalised (Postfix
leaves headers of remote clients alone unless remote_header_rewrite_domain is set, which is
not supported) and never aliased.

Canonical maps (canonical(5)) give one address, looked up again until it maps to itself, at
most MAX_CANONICAL_NESTING times. virtual_alias_maps (virtual(5)) give a list, each address
expanded again, breadth first as cleanup_map1n does: an address that maps to a list holding
itself keeps itself and is not expanded again; duplicates (ignoring case) are dropped.
Past virtual_alias_recursion_limit lookups for one address or virtual_alias_expansion_limit
addresses, the recipient is a TemporaryFailure, as Postfix defers such mail ("unreasonable
virtual_alias_maps map nesting/expansion size"). Results are canonicalised (bob ->
bob@$myorigin), a result @domain keeps the user, and an extension that the matching key did
not carry is appended to each result (propagate_unmatched_extensions: canonical, virtual).

A recipient whose domain is a virtual alias domain (and not ours) and that no alias matched is
UserUnknown: smtpd refuses it with 550 5.1.1 at RCPT time. Any table that cannot answer makes
the result a TemporaryFailure, whose reason is the warning to log.

Cost: with none of these maps set (the default) and an address with a domain, sender() and
recipient() return at once; `changes_envelope` says whether anything is configured at all.

Parameters: canonical_maps, sender_canonical_maps, recipient_canonical_maps, canonical_classes,
sender_canonical_classes, recipient_canonical_classes, masquerade_domains,
masquerade_exceptions, masquerade_classes, virtual_alias_maps, virtual_alias_domains,
virtual_alias_recursion_limit, virtual_alias_expansion_limit, recipient_delimiter,
propagate_unmatched_extensions, and those of canonicalise and resolve.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mta.config.maincf import ConfigError, Settings
from mta.config.values import number, parse_list
from mta.maps import TableUnavailable
from mta.rewrite.canonical import Canonicaliser, Masquerade
from mta.rewrite.resolve import Resolver, TemporaryFailure
from mta.rewrite.tables import MapList

log = logging.getLogger("mta.rewrite")

MAX_CANONICAL_NESTING = 10  # Postfix's cleanup_map11 MAX_RECURSION
ADDRESS_CLASSES = frozenset(
    {"envelope_sender", "envelope_recipient", "header_sender", "header_recipient"}
)
EXTENSION_CLASSES = frozenset({"canonical", "virtual", "alias", "forward", "include", "generic"})


@dataclass(frozen=True, slots=True)
class UserUnknown:
    """A recipient in a virtual alias domain that no alias matches."""

    address: str
    reason: str = "User unknown in virtual alias table"


class _LookupProblem(Exception):
    """A lookup failed or went past a limit: the whole rewrite becomes a TemporaryFailure."""


def _classes(settings: Settings, name: str, known: frozenset[str]) -> frozenset[str]:
    items = frozenset(item.lower() for item in parse_list(settings.get(name)))
    unknown = items - known
    if unknown:
        raise ConfigError(
            f"{settings.where(name)}{name}: unknown value {sorted(unknown)[0]!r} "
            f"(expected {', '.join(sorted(known))})"
        )
    return items


def _present(*maps: MapList) -> tuple[MapList, ...]:
    """The map lists that have tables, in order."""
    return tuple(item for item in maps if item)


def _maps_for(settings: Settings, name: str, classes: str, address_class: str) -> MapList:
    """The tables of `name`, or none when its classes parameter leaves out address_class."""
    if address_class not in _classes(settings, classes, ADDRESS_CLASSES):
        return MapList(name, "")
    return MapList(name, settings.get(name))


@dataclass(frozen=True, slots=True)
class AddressRewriter:
    canonicaliser: Canonicaliser
    resolver: Resolver
    sender_maps: tuple[MapList, ...]
    recipient_maps: tuple[MapList, ...]
    sender_masquerade: Masquerade | None
    recipient_masquerade: Masquerade | None
    virtual_alias_maps: MapList
    recursion_limit: int
    expansion_limit: int
    recipient_delimiter: str
    propagate_canonical: bool
    propagate_virtual: bool
    header_sender_maps: tuple[MapList, ...] = ()
    header_recipient_maps: tuple[MapList, ...] = ()
    header_sender_masquerade: Masquerade | None = None
    header_recipient_masquerade: Masquerade | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AddressRewriter:
        masquerade = Masquerade.from_settings(settings)
        masquerade_classes = _classes(settings, "masquerade_classes", ADDRESS_CLASSES)
        propagate = _classes(settings, "propagate_unmatched_extensions", EXTENSION_CLASSES)

        def sender_maps(address_class: str) -> tuple[MapList, ...]:
            return _present(
                _maps_for(
                    settings, "sender_canonical_maps", "sender_canonical_classes", address_class
                ),
                _maps_for(settings, "canonical_maps", "canonical_classes", address_class),
            )

        def recipient_maps(address_class: str) -> tuple[MapList, ...]:
            return _present(
                _maps_for(
                    settings,
                    "recipient_canonical_maps",
                    "recipient_canonical_classes",
                    address_class,
                ),
                _maps_for(settings, "canonical_maps", "canonical_classes", address_class),
            )

        def masquerade_for(address_class: str) -> Masquerade | None:
            return masquerade if masquerade and address_class in masquerade_classes else None

        return cls(
            canonicaliser=Canonicaliser.from_settings(settings),
            resolver=Resolver.from_settings(settings),
            sender_maps=sender_maps("envelope_sender"),
            recipient_maps=recipient_maps("envelope_recipient"),
            sender_masquerade=masquerade_for("envelope_sender"),
            recipient_masquerade=masquerade_for("envelope_recipient"),
            virtual_alias_maps=MapList("virtual_alias_maps", settings.get("virtual_alias_maps")),
            recursion_limit=number(settings, "virtual_alias_recursion_limit", minimum=1),
            expansion_limit=number(settings, "virtual_alias_expansion_limit", minimum=1),
            recipient_delimiter=settings.get("recipient_delimiter"),
            propagate_canonical="canonical" in propagate,
            propagate_virtual="virtual" in propagate,
            header_sender_maps=sender_maps("header_sender"),
            header_recipient_maps=recipient_maps("header_recipient"),
            header_sender_masquerade=masquerade_for("header_sender"),
            header_recipient_masquerade=masquerade_for("header_recipient"),
        )

    @property
    def changes_envelope(self) -> bool:
        """Whether any map or masquerading is configured for envelope addresses."""
        return bool(
            self.sender_maps
            or self.recipient_maps
            or self.sender_masquerade
            or self.recipient_masquerade
            or self.virtual_alias_maps
            or self.resolver.virtual_alias_domains
        )

    @property
    def changes_headers(self) -> bool:
        """Whether any map or masquerading is configured for header addresses."""
        return bool(
            self.header_sender_maps
            or self.header_recipient_maps
            or self.header_sender_masquerade
            or self.header_recipient_masquerade
        )

    def header_address(self, address: str, recipient: bool) -> str | TemporaryFailure:
        """An address of a sender header (recipient False) or a recipient header, rewritten
        as cleanup rewrites header addresses: canonical maps, then masquerading."""
        if recipient:
            maps, masquerade = self.header_recipient_maps, self.header_recipient_masquerade
        else:
            maps, masquerade = self.header_sender_maps, self.header_sender_masquerade
        try:
            return self._canonical_and_masquerade(address, maps, masquerade)
        except (TableUnavailable, _LookupProblem) as error:
            return TemporaryFailure(f"header address {address}: {error}")

    def _canonical_and_masquerade(
        self, address: str, maps: tuple[MapList, ...], masquerade: Masquerade | None
    ) -> str:
        """address through each canonical map list, then masqueraded; raises TableUnavailable
        or _LookupProblem."""
        for table in maps:
            address = self._canonical(table, address)
        if masquerade is not None:
            address = masquerade.apply(address)
        return address

    def sender(self, address: str) -> str | TemporaryFailure:
        """The envelope sender as cleanup writes it to the queue file."""
        if not address:
            return address
        if (
            not self.sender_maps
            and self.sender_masquerade is None
            and self.canonicaliser.is_noop_for(address)
        ):
            return address
        try:
            rewritten = self._canonical_and_masquerade(
                self.canonicaliser.canonicalise(address), self.sender_maps, self.sender_masquerade
            )
        except (TableUnavailable, _LookupProblem) as error:
            return TemporaryFailure(f"sender {address}: {error}")
        return rewritten

    def recipient(self, address: str) -> tuple[str, ...] | UserUnknown | TemporaryFailure:
        """The recipients that one envelope recipient becomes, in order."""
        if (
            not self.recipient_maps
            and self.recipient_masquerade is None
            and not self.virtual_alias_maps
            and not self.resolver.virtual_alias_domains
            and self.canonicaliser.is_noop_for(address)
        ):
            return (address,)
        try:
            rewritten = self._canonical_and_masquerade(
                self.canonicaliser.canonicalise(address),
                self.recipient_maps,
                self.recipient_masquerade,
            )
            aliased, expansion = self._expand(rewritten)
            if not aliased and self.resolver.is_alias_domain(rewritten.rpartition("@")[2]):
                return UserUnknown(address)
        except (TableUnavailable, _LookupProblem) as error:
            return TemporaryFailure(f"recipient {address}: {error}")
        return expansion

    def _domain_is_local(self, address: str) -> bool:
        """canonical(5)/virtual(5): a bare user is looked up only for $myorigin and our own
        domains."""
        domain = address.rpartition("@")[2]
        return domain.lower() == self.canonicaliser.myorigin.lower() or self.resolver.is_local(
            domain
        )

    def _map(self, maps: MapList, address: str, propagate: bool) -> list[str] | None:
        """Postfix's mail_addr_map: the addresses a table gives for address, canonicalised."""
        match = maps.find_address(address, self.recipient_delimiter, self._domain_is_local(address))
        if match is None:
            return None
        value = match.value
        extension = match.unmatched_extension
        if value.startswith("@"):
            local = address.rpartition("@")[0] if "@" in address else address
            if extension is not None:
                local = local[: -len(extension)]
            value = local + value
        results = []
        for item in parse_list(value):
            result = self.canonicaliser.canonicalise(item)
            if propagate and extension is not None:
                local, at, domain = result.rpartition("@")
                result = f"{local}{extension}@{domain}" if at else result + extension
            results.append(result)
        return results

    def _canonical(self, maps: MapList, address: str) -> str:
        """cleanup_map11: one address, looked up again until it maps to itself."""
        for _nesting in range(MAX_CANONICAL_NESTING):
            results = self._map(maps, address, self.propagate_canonical)
            if not results:
                return address
            if len(results) > 1:
                log.warning(
                    "warning: multi-valued %s entry for %s: using %s",
                    maps.parameter,
                    address,
                    results[0],
                )
            if results[0].lower() == address.lower():
                return results[0]
            address = results[0]
        raise _LookupProblem(f"unreasonable {maps.parameter} map nesting for {address}")

    def _expand(self, address: str) -> tuple[bool, tuple[str, ...]]:
        """cleanup_map1n: (whether address itself matched an alias, its expansion)."""
        maps = self.virtual_alias_maps
        if not maps:
            return False, (address,)
        expansion = [address]
        expanded_to_self: set[str] = set()
        aliased = False
        position = 0
        while position < len(expansion):
            if len(expansion) > self.expansion_limit:
                raise _LookupProblem(
                    f"unreasonable virtual_alias_maps map expansion size for {address}"
                )
            for lookups in range(self.recursion_limit + 1):
                current = expansion[position]
                if current.lower() in expanded_to_self:
                    break
                if lookups == self.recursion_limit:
                    raise _LookupProblem(
                        f"unreasonable virtual_alias_maps map nesting for {address}"
                    )
                results = self._map(maps, current, self.propagate_virtual)
                if not results:
                    break
                aliased = aliased or position == 0
                expansion[position : position + 1] = results[:1]
                expansion.extend(results[1:])
                if any(result.lower() == current.lower() for result in results):
                    expanded_to_self.add(current.lower())
            position += 1
        unique: dict[str, str] = {}
        for result in expansion:
            unique.setdefault(result.lower(), result)
        return aliased, tuple(unique.values())
