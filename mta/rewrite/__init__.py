"""rewrite: Postfix's cleanup(8) and trivial-rewrite(8) address rewriting and routing.

    rewriter = AddressRewriter.from_settings(settings)
    rewriter.sender("user@host.example.com")   -> str | TemporaryFailure
    rewriter.recipient("info@example.com")     -> tuple of addresses | UserUnknown
                                                  | TemporaryFailure
    rewriter.resolver.route("bob@example.net") -> Route(class, transport, nexthop, address)
                                                  | TemporaryFailure

As ADDRESS_REWRITING_README describes: canonicalisation (swap_bangpath, allow_percent_hack,
append_at_myorigin, append_dot_mydomain), canonical_maps with their sender_ and recipient_
variants, masquerade_domains with masquerade_exceptions, virtual_alias_maps with
virtual_alias_domains, and the resolver's address classes (mydestination, virtual alias and
mailbox domains, relay_domains) with transport_maps. Header addresses are rewritten by
mta.cleanup with AddressRewriter.header_address.

A shared layer, not a service: smtpd applies the envelope rewriting when it receives mail and
qmgr routes with the resolver. It imports mta.maps, mta.config and mta.util only (an
import-linter contract checks it). A table that cannot answer never raises out of it: the
caller gets a TemporaryFailure to turn into a 4xx and a log line (gradual degradation).
"""

from mta.rewrite.canonical import Canonicaliser, Masquerade
from mta.rewrite.resolve import Resolver, Route, TemporaryFailure
from mta.rewrite.rewriter import AddressRewriter, UserUnknown
from mta.rewrite.tables import DomainList, MapList

__all__ = [
    "AddressRewriter",
    "Canonicaliser",
    "DomainList",
    "MapList",
    "Masquerade",
    "Resolver",
    "Route",
    "TemporaryFailure",
    "UserUnknown",
]
