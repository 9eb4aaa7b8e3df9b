"""The two ways rewriting asks tables: a parameter's map list, and a list of domains.

    maps = MapList("virtual_alias_maps", settings.get("virtual_alias_maps"))
    maps.find_address("user+ext@example.com", "+", domain_is_local=False)
        -> AddressMatch(value="bob@example.net", unmatched_extension="+ext") | None
    domains = DomainList("relay_domains", settings.get("relay_domains"))
    domains.matches("mail.example.com") -> bool

MapList is Postfix's MAPS: the tables of one parameter, asked in order for each key of
Postfix's address lookup order (mta.maps.address); for each key the first table that has it
wins. Pattern tables (regexp:, pcre:) see only the full address, never user@domain without
the extension, the bare user or @domain, as canonical(5), virtual(5) and transport(5) say.

DomainList is Postfix's domain_list (mydestination, relay_domains, virtual_alias_domains,
virtual_mailbox_domains): entries in order, the first that matches decides; `!entry` negates;
`name` matches that domain only and `.name` its subdomains; a `type:name` table matches a domain
it has as a key, or a `.parent` key of one of its parent domains (pattern tables: the domain
only). This is Postfix 3.6's default, parent_domain_matches_subdomains empty; `/file` entries
are not supported and are a ConfigError.

Tables are opened through mta.maps.open_table on first use and shared by the process; a table
that cannot open or answer raises TableUnavailable out of the lookup, and is tried again by the
next one (Postfix 2.9's gradual degradation): callers turn it into a temporary failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from mta.config.errors import ConfigError
from mta.config.values import parse_list
from mta.maps import TableFormatError, address_keys, open_table, split_spec
from mta.maps.address import split_extension

# Tables that match a pattern against the whole key: Postfix's DICT_FLAG_PATTERN tables.
PATTERN_TABLE_TYPES = frozenset({"regexp", "pcre"})


def _table_spec(parameter: str, spec: str) -> tuple[str, bool]:
    """(spec, whether it is a pattern table); a malformed spec is a ConfigError naming it."""
    try:
        kind, _name = split_spec(spec)
    except TableFormatError as error:
        raise ConfigError(f"{parameter}: {error}") from None
    return spec, kind in PATTERN_TABLE_TYPES


@dataclass(frozen=True, slots=True)
class AddressMatch:
    """A table's answer for an address, and the extension (with its delimiter) that the key
    that matched did not carry: Postfix propagates it to the result."""

    value: str
    unmatched_extension: str | None


class MapList:
    """The tables of one parameter (canonical_maps, virtual_alias_maps, transport_maps...)."""

    def __init__(self, parameter: str, value: str) -> None:
        self.parameter = parameter
        self._tables = tuple(_table_spec(parameter, spec) for spec in parse_list(value))

    def __bool__(self) -> bool:
        return bool(self._tables)

    def find(self, key: str, *, partial: bool = False) -> str | None:
        """The first table's value for key; a partial key (a part of an address or a parent
        domain) is not shown to pattern tables. Raises TableUnavailable."""
        for spec, pattern in self._tables:
            if partial and pattern:
                continue
            value = open_table(spec).lookup(key)
            if value is not None:
                return value
        return None

    def find_address(
        self, address: str, recipient_delimiter: str, domain_is_local: bool
    ) -> AddressMatch | None:
        """Postfix's mail_addr_find: user+ext@domain, user@domain, (user+ext, user when the
        domain is local), @domain; the first key any table has wins."""
        local = address.rpartition("@")[0] if "@" in address else address
        _user, extension = split_extension(local, recipient_delimiter)
        keys = address_keys(address, recipient_delimiter, domain_is_local)
        for position, key in enumerate(keys):
            value = self.find(key, partial=position > 0)
            if value is not None:
                whole = extension is None or key in (address, local)
                return AddressMatch(value, None if whole else extension)
        return None


class DomainList:
    """A list of domains, with Postfix's `.parent`, `!negation` and `type:name` entries."""

    def __init__(self, parameter: str, value: str) -> None:
        self.parameter = parameter
        entries: list[tuple[bool, str, bool | None]] = []
        for item in parse_list(value):
            negated = item.startswith("!")
            entry = item.lstrip("!")
            if entry.startswith("/"):
                raise ConfigError(f"{parameter}: {entry}: /file entries are not supported")
            if ":" in entry and not entry.startswith("["):
                spec, pattern = _table_spec(parameter, entry)
                entries.append((negated, spec, pattern))
            else:
                entries.append((negated, entry.lower().rstrip("."), None))
        self._entries = tuple(entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def matches(self, domain: str) -> bool:
        """Whether domain is in the list (the first entry that matches decides); raises
        TableUnavailable when a table entry cannot answer."""
        domain = domain.lower().rstrip(".")
        if not domain:
            return False
        for negated, entry, pattern in self._entries:
            if pattern is None:
                found = domain == entry or (entry.startswith(".") and domain.endswith(entry))
            else:
                found = self._in_table(entry, pattern, domain)
            if found:
                return not negated
        return False

    @staticmethod
    def _in_table(spec: str, pattern: bool, domain: str) -> bool:
        table = open_table(spec)
        if table.lookup(domain) is not None:
            return True
        if pattern:
            return False
        parent = domain.find(".")
        while parent >= 0:
            if table.lookup(domain[parent:]) is not None:
                return True
            parent = domain.find(".", parent + 1)
        return False
