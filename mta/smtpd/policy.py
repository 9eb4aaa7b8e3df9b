"""smtpd access policy, kept apart from the protocol as Postfix keeps smtpd_check.c.

Open relaying is impossible by default: a client outside `mynetworks` may send only to
recipients whose domain is one of ours (`mydestination`) or one we relay for
(`relay_domains`); anything else gets `554 5.7.1 <address>: Relay access denied`, as
Postfix's permit_mynetworks, reject_unauth_destination do. A local part with sender-specified
routing (`@`, `%`, `!`) is treated as a relay attempt from such clients, because the
percent hack or a bang path could turn it into one after rewriting.

Trust: the client address comes from the kernel (getpeername), never from the client. The
domain lists are mta.rewrite's, the very ones the resolver routes by: compared
case-insensitively without a trailing dot, ".example.com" matching every subdomain, "!"
negation and type:name tables as in Postfix.

Parameters:
  mynetworks (127.0.0.0/8 [::1]/128)     trusted client networks, CIDR or single addresses,
                                         IPv6 optionally in [brackets]
  mydestination ($myhostname, localhost.$mydomain, localhost)   domains delivered here
  relay_domains (empty)                  domains this host relays mail for
  myorigin ($myhostname)                 the domain of an address given without one
  virtual_alias_domains, virtual_mailbox_domains   domains of ours too

reject_unlisted_recipient, as far as address rewriting knows it (mta.rewrite): a recipient of
a virtual alias domain that no alias matches gets `550 5.1.1 <address>: Recipient address
rejected: User unknown in virtual alias table`; a table that cannot answer gets
`451 4.3.0 <address>: Temporary lookup failure`, for senders and recipients alike.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from mta.config.maincf import ConfigError, Settings
from mta.config.values import parse_list
from mta.maps import TableUnavailable
from mta.rewrite import DomainList, Resolver, TemporaryFailure, UserUnknown

log = logging.getLogger("mta.smtpd")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SENDER_ROUTING_CHARACTERS = frozenset("@%!")


@dataclass(frozen=True, slots=True)
class Rejection:
    """A policy decision to refuse, with the reply to give."""

    code: int
    status: str
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.status} {self.text}"


def parse_networks(settings: Settings, name: str) -> tuple[IPNetwork, ...]:
    networks: list[IPNetwork] = []
    for entry in parse_list(settings.get(name)):
        address, slash, prefix = entry.partition("/")
        if address.startswith("[") and address.endswith("]"):
            address = address[1:-1]
        try:
            networks.append(ipaddress.ip_network(f"{address}{slash}{prefix}", strict=False))
        except ValueError:
            raise ConfigError(f"{name}: {entry!r} is not a network address") from None
    return tuple(networks)


def client_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The client's IP address; an IPv4-mapped IPv6 address counts as the IPv4 one."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class RelayPolicy:
    """Decides, per recipient, whether a client may hand us mail for it."""

    def __init__(
        self,
        mynetworks: Iterable[IPNetwork],
        our_domains: Iterable[DomainList],
        myorigin: str,
    ) -> None:
        self.mynetworks = tuple(mynetworks)
        # mydestination, relay_domains, virtual_alias_domains, virtual_mailbox_domains: the
        # same lists (with .parent, !negation and tables) the resolver routes by.
        self.our_domains = tuple(domains for domains in our_domains if domains)
        self.myorigin = myorigin

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver | None = None) -> RelayPolicy:
        if resolver is None:
            resolver = Resolver.from_settings(settings)
        return cls(
            parse_networks(settings, "mynetworks"),
            (
                resolver.mydestination,
                resolver.relay_domains,
                resolver.virtual_alias_domains,
                resolver.virtual_mailbox_domains,
            ),
            settings.get("myorigin").strip(),
        )

    def is_trusted_client(self, client_address: str) -> bool:
        """permit_mynetworks: the client's address is in one of mynetworks."""
        ip = client_ip(client_address)
        return ip is not None and any(ip in network for network in self.mynetworks)

    def check_recipient(self, client_address: str, recipient: str) -> Rejection | None:
        """None to accept RCPT TO:<recipient> from this client, else the rejection."""
        if self.is_trusted_client(client_address):
            return None
        return self.check_untrusted_recipient(recipient)

    def check_untrusted_recipient(self, recipient: str) -> Rejection | None:
        """reject_unauth_destination: check_recipient for a client outside mynetworks.

        smtpd decides is_trusted_client once per session and then asks only this per RCPT.
        """
        local_part, at, domain = recipient.rpartition("@")
        if not at:
            local_part, domain = recipient, self.myorigin
        if SENDER_ROUTING_CHARACTERS.isdisjoint(local_part):
            try:
                if any(domains.matches(domain) for domains in self.our_domains):
                    return None
            except TableUnavailable as error:
                log.warning("warning: reject_unauth_destination: %s", error)
                return rewriting_rejection(recipient, TemporaryFailure(str(error)))
        return Rejection(554, "5.7.1", f"<{recipient}>: Relay access denied")


def rewriting_rejection(address: str, outcome: UserUnknown | TemporaryFailure) -> Rejection:
    """The reply for an address that rewriting refused or could not look up."""
    if isinstance(outcome, UserUnknown):
        return Rejection(550, "5.1.1", f"<{address}>: Recipient address rejected: {outcome.reason}")
    return Rejection(451, "4.3.0", f"<{address}>: Temporary lookup failure")
