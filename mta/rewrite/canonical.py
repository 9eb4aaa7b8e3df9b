"""Address canonicalisation and masquerading: trivial-rewrite's rewrite_tree and cleanup_masq.

    canonicaliser = Canonicaliser.from_settings(settings)
    canonicaliser.canonicalise("site!user") == "user@site"
    masquerade("user@host.example.com", ("example.com",), ()) == "user@example.com"

canonicalise, in Postfix's order (ADDRESS_REWRITING_README, "Rewrite addresses to standard
form"):
  1. a source route is dropped: @a,@b:user@c -> user@c
  2. an address without @ gets exactly one of, in this order of preference:
       swap_bangpath (yes)        a!b!user -> b!user@a (the first site becomes the domain;
                                  the rest is routed on when a is ours, see mta.rewrite.resolve)
       allow_percent_hack (yes)   user%a%b -> user%a@b (the last % becomes @)
       append_at_myorigin (yes)   user -> user@$myorigin
  3. append_dot_mydomain (no: Postfix 3's default at compatibility_level >= 1)
                                  user@host -> user@host.$mydomain, never for [literals]
  4. one trailing dot of the domain is dropped (user@example.com. -> user@example.com)
The null address stays empty. user%domain@ours becomes user@domain when the address is
resolved (trivial-rewrite does that in resolve, not here).

masquerade (masquerade_domains, masquerade_exceptions): the first entry of masquerade_domains
that is the address's domain or a parent of it decides, in the order written: the domain
itself, or a `!entry`, leaves the address alone; a parent replaces the domain. Local parts in
masquerade_exceptions (a list; type:name tables are asked for the local part) are never
masqueraded.
"""

from __future__ import annotations

from dataclasses import dataclass

from mta.config.maincf import Settings
from mta.config.values import boolean, parse_list
from mta.rewrite.tables import MapList


@dataclass(frozen=True, slots=True)
class Canonicaliser:
    """trivial-rewrite's "local" rewriting context: the parameters of canonicalise()."""

    myorigin: str
    mydomain: str
    swap_bangpath: bool = True
    allow_percent_hack: bool = True
    append_at_myorigin: bool = True
    append_dot_mydomain: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Canonicaliser:
        return cls(
            myorigin=settings.get("myorigin").strip(),
            mydomain=settings.get("mydomain").strip(),
            swap_bangpath=boolean(settings, "swap_bangpath"),
            allow_percent_hack=boolean(settings, "allow_percent_hack"),
            append_at_myorigin=boolean(settings, "append_at_myorigin"),
            append_dot_mydomain=boolean(settings, "append_dot_mydomain"),
        )

    def is_noop_for(self, address: str) -> bool:
        """True when canonicalise(address) is address: the cheap test of the common case."""
        return (
            "@" in address
            and address[0] != "@"
            and address[-1] != "."
            and not self.append_dot_mydomain
        )

    def canonicalise(self, address: str) -> str:
        if not address:
            return address
        if address.startswith("@") and ":" in address[:-1]:
            address = address.partition(":")[2]
        if "@" not in address:
            site, bang, rest = address.partition("!")
            if self.swap_bangpath and bang:
                address = f"{rest}@{site}" if rest else f"@{site}"
            elif self.allow_percent_hack and "%" in address:
                user, _, domain = address.rpartition("%")
                address = f"{user}@{domain}"
            elif self.append_at_myorigin and self.myorigin:
                address = f"{address}@{self.myorigin}"
        local, at, domain = address.rpartition("@")
        if (
            self.append_dot_mydomain
            and self.mydomain
            and at
            and domain
            and not domain.startswith("[")
            and "." not in domain
        ):
            address = f"{address}.{self.mydomain}"
        elif at and domain.endswith(".") and domain != "." and not domain.endswith(".."):
            address = f"{local}@{domain[:-1]}"
        return address


@dataclass(frozen=True, slots=True)
class Masquerade:
    """masquerade_domains (in order, `!` entries kept) and masquerade_exceptions."""

    domains: tuple[str, ...]
    exception_names: frozenset[str]
    exception_tables: MapList

    @classmethod
    def from_settings(cls, settings: Settings) -> Masquerade:
        exceptions = parse_list(settings.get("masquerade_exceptions"))
        tables = [item for item in exceptions if ":" in item]
        return cls(
            domains=tuple(item.lower() for item in parse_list(settings.get("masquerade_domains"))),
            exception_names=frozenset(item.lower() for item in exceptions if ":" not in item),
            exception_tables=MapList("masquerade_exceptions", " ".join(tables)),
        )

    def __bool__(self) -> bool:
        return bool(self.domains)

    def apply(self, address: str) -> str:
        """The masqueraded address; raises TableUnavailable from masquerade_exceptions."""
        local, at, domain = address.rpartition("@")
        if not at or not domain or not self.domains:
            return address
        if local.lower() in self.exception_names or (
            self.exception_tables and self.exception_tables.find(local) is not None
        ):
            return address
        domain_lower = domain.lower()
        for entry in self.domains:
            keep = entry.startswith("!")
            parent = entry.lstrip("!")
            if not parent:
                continue
            if parent == domain_lower:
                return address
            if domain_lower.endswith(f".{parent}"):
                return address if keep else f"{local}@{parent}"
        return address
