"""Recipient resolution: which transport and next hop delivers an address (trivial-rewrite).

    address without a domain        gets @$myorigin first
    domain in mydestination         local_transport   (default local:$myhostname)
    domain in relay_domains         relay_transport   (default relay)
    anything else                   default_transport (default smtp)

A transport spec is "name" or "name:nexthop", split at the first colon like Postfix; with no
next hop the recipient's domain is the next hop. The relay and smtp agents come with issue 6:
until then a transport whose socket does not exist defers its recipients with "4.3.0 mail
transport unavailable", as Postfix does. transport_maps is not supported yet.

Parameters: myorigin, mydestination, relay_domains, local_transport, relay_transport,
default_transport.
"""

from __future__ import annotations

from dataclasses import dataclass

from mta.config.maincf import ConfigError, Settings
from mta.config.values import word_list


def split_transport(spec: str) -> tuple[str, str]:
    name, _, nexthop = spec.strip().partition(":")
    return name.strip(), nexthop.strip()


@dataclass(frozen=True, slots=True)
class Resolver:
    myorigin: str
    mydestination: frozenset[str]
    relay_domains: frozenset[str]
    local_transport: tuple[str, str]
    relay_transport: tuple[str, str]
    default_transport: tuple[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Resolver:
        transports = {}
        for name in ("local_transport", "relay_transport", "default_transport"):
            transport = split_transport(settings.get(name))
            if not transport[0] or "/" in transport[0]:
                raise ConfigError(f"{name} = {settings.get(name)!r}: expected name[:nexthop]")
            transports[name] = transport
        return cls(
            myorigin=settings.get("myorigin").strip().lower(),
            mydestination=frozenset(d.lower() for d in word_list(settings, "mydestination")),
            relay_domains=frozenset(d.lower() for d in word_list(settings, "relay_domains")),
            local_transport=transports["local_transport"],
            relay_transport=transports["relay_transport"],
            default_transport=transports["default_transport"],
        )

    def resolve(self, address: str) -> tuple[str, str]:
        """(transport, nexthop) for a recipient address."""
        domain = address.rpartition("@")[2].lower() if "@" in address else self.myorigin
        domain = domain.rstrip(".")
        if domain in self.mydestination:
            transport, nexthop = self.local_transport
        elif domain in self.relay_domains:
            transport, nexthop = self.relay_transport
        else:
            transport, nexthop = self.default_transport
        return transport, nexthop or domain
