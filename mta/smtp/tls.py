"""TLS for the SMTP and LMTP clients: security levels, policy tables, contexts, name checks.

    policy = TlsPolicies.from_settings(settings, prefix).lookup("[mx.example.com]:587")
        -> TlsPolicy(level=Level.SECURE, match=("mx.example.com",)) | TlsPolicyError
    context = contexts.context(policy)            # an ssl.SSLContext for the handshake
    verified_name(peer_certificate, patterns)     # after the handshake: did a name match?

Levels, as Postfix's TLS_README and smtp(8) define them:

  none       never STARTTLS.
  may        STARTTLS when the server offers it, no certificate check; a failed handshake is
             retried in plain text on a new connection (Postfix's RETRY_AS_PLAINTEXT).
  encrypt    STARTTLS is mandatory, no certificate check (4.7.4 when it is not offered).
  verify     mandatory; the chain must verify against smtp_tls_CAfile / smtp_tls_CApath (the
             system's trust store when both are empty) and a certificate name must match
             smtp_tls_verify_cert_match (default: `hostname`, the MX host name).
  secure     as verify, matching smtp_tls_secure_cert_match (default: `nexthop, dot-nexthop`,
             the next-hop domain and its subdomains: MX names from unsigned DNS are not trusted).
  dane       RFC 7672 (mta.smtp.dane does the TLSA work): an MX that is not DNSSEC-secure or
             without usable TLSA records is `may`; usable records make TLS mandatory and the
             chain must match them.
  dane-only  as dane, but a destination without usable secure TLSA records is deferred.

Match patterns (`match=a:b:c` in a policy, or the *_cert_match parameters): `hostname`,
`nexthop`, `dot-nexthop`, a name (that name), `.domain` (any subdomain of it). A certificate
name is a subjectAltName DNS entry, or the subject's commonName when there is none (RFC 6125);
`*.example.com` matches one left-most label.

smtp_tls_policy_maps (Postfix syntax): the key is the next hop as written (`example.com`,
`[mx.example.com]:587`; an lmtp `inet:`/`unix:` prefix is not part of it); a bare domain that
is not found is tried as `.parent` for each parent, as transport(5) does. The value is a level
and attributes: `match=` (patterns, `:` separated), `protocols=` (`>=TLSv1.2`, or exclusions
`!TLSv1, !TLSv1.1`). Any other attribute, or an unknown level, is a policy error: the mail is
deferred (4.7.5) rather than sent with less protection than the operator asked for.

Trust: nothing from the peer is trusted before the handshake and the checks above. Bytes the
server sends before the handshake (after its 220 reply to STARTTLS) are thrown away by the
session (mta.smtp.session), never read as replies.

Parameters (smtp_ for smtp and relay, lmtp_ for lmtp): *_tls_security_level,
*_tls_policy_maps, *_tls_CAfile, *_tls_CApath, *_tls_verify_cert_match,
*_tls_secure_cert_match, *_tls_loglevel, *_tls_scert_verifydepth (the agent hands it
to the DANE-TA chain check).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mta.config.errors import ConfigError
from mta.config.maincf import Settings
from mta.config.values import number, parse_list
from mta.maps import TableUnavailable
from mta.rewrite.tables import MapList

MAX_POLICY_ATTRIBUTES = 16
MAX_MATCH_PATTERNS = 32


class Level(enum.StrEnum):
    NONE = "none"
    MAY = "may"
    ENCRYPT = "encrypt"
    DANE = "dane"
    DANE_ONLY = "dane-only"
    VERIFY = "verify"
    SECURE = "secure"

    @property
    def mandatory(self) -> bool:
        """TLS must be used (dane decides per host, after its TLSA lookup)."""
        return self in (Level.ENCRYPT, Level.VERIFY, Level.SECURE)

    @property
    def verified(self) -> bool:
        """The chain is checked against the trust store and a name must match."""
        return self in (Level.VERIFY, Level.SECURE)


_PROTOCOLS: Mapping[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = list(_PROTOCOLS)


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """The TLS requirements for one next hop."""

    level: Level
    match: tuple[str, ...] = ()
    """Name patterns for verify/secure; empty: the level's *_cert_match parameter."""
    minimum_version: ssl.TLSVersion | None = None
    maximum_version: ssl.TLSVersion | None = None


@dataclass(frozen=True, slots=True)
class TlsPolicyError:
    """A policy that cannot be applied: the mail is deferred with this text (4.7.5)."""

    text: str


def _protocol_bounds(value: str) -> tuple[ssl.TLSVersion | None, ssl.TLSVersion | None]:
    """Postfix's protocols= forms: `>=TLSv1.2`, `<=TLSv1.2`, or `!TLSv1, !TLSv1.1`."""
    low: ssl.TLSVersion | None = None
    high: ssl.TLSVersion | None = None
    excluded: set[str] = set()
    for item in parse_list(value.replace(":", " ")):
        if item.startswith(">=") and item[2:] in _PROTOCOLS:
            low = _PROTOCOLS[item[2:]]
        elif item.startswith("<=") and item[2:] in _PROTOCOLS:
            high = _PROTOCOLS[item[2:]]
        elif item.startswith("!") and item[1:] in {*_PROTOCOLS, "SSLv2", "SSLv3"}:
            excluded.add(item[1:])
        else:
            raise ValueError(f"unknown protocol {item!r}")
    allowed = [name for name in _ORDER if name not in excluded]
    if excluded:
        if not allowed:
            raise ValueError("every protocol is excluded")
        # Exclusions at the ends narrow the range; one in the middle cannot be expressed by
        # minimum/maximum, so the range keeps its ends (OpenSSL would do the same).
        low = max(low or _PROTOCOLS[allowed[0]], _PROTOCOLS[allowed[0]])
        high = min(high or _PROTOCOLS[allowed[-1]], _PROTOCOLS[allowed[-1]])
    return low, high


def parse_policy(value: str) -> TlsPolicy:
    """A policy table value `level [name=value ...]`; ValueError when it is not usable."""
    words = value.split()
    if not words:
        raise ValueError("empty TLS policy")
    try:
        level = Level(words[0].lower())
    except ValueError:
        raise ValueError(f"unknown TLS security level {words[0]!r}") from None
    if len(words) > MAX_POLICY_ATTRIBUTES + 1:
        raise ValueError("too many TLS policy attributes")
    match: tuple[str, ...] = ()
    low: ssl.TLSVersion | None = None
    high: ssl.TLSVersion | None = None
    for word in words[1:]:
        name, equals, attribute = word.partition("=")
        if not equals:
            raise ValueError(f"malformed TLS policy attribute {word!r}")
        if name == "match":
            match = tuple(pattern.lower() for pattern in attribute.split(":") if pattern)
            if not match or len(match) > MAX_MATCH_PATTERNS:
                raise ValueError(f"bad match attribute {word!r}")
        elif name == "protocols":
            low, high = _protocol_bounds(attribute)
        else:
            raise ValueError(f"unsupported TLS policy attribute {name!r}")
    return TlsPolicy(level, match, low, high)


def _level(settings: Settings, name: str) -> Level:
    value = settings.get(name).strip().lower()
    try:
        return Level(value) if value else Level.NONE
    except ValueError:
        raise ConfigError(f"{settings.where(name)}{name} = {value}: unknown level") from None


@dataclass(frozen=True)
class TlsPolicies:
    """The default level and the policy tables of one client (smtp_ or lmtp_ parameters)."""

    default: TlsPolicy
    maps: MapList | None = None

    @classmethod
    def from_settings(cls, settings: Settings, prefix: str) -> TlsPolicies:
        level = _level(settings, f"{prefix}_tls_security_level")
        maps_name = f"{prefix}_tls_policy_maps"
        value = settings.get(maps_name)
        return cls(TlsPolicy(level), MapList(maps_name, value) if value.strip() else None)

    def lookup(self, nexthop: str) -> TlsPolicy | TlsPolicyError:
        """The policy for a next hop as written; may block on a remote table."""
        if self.maps is None:
            return self.default
        key = nexthop.strip()
        for prefix in ("inet:", "unix:"):
            key = key.removeprefix(prefix)
        keys = [key]
        if not key.startswith("[") and ":" not in key:
            labels = key.lower().split(".")
            keys += ["." + ".".join(labels[index:]) for index in range(1, len(labels))]
        try:
            for position, candidate in enumerate(keys):
                value = self.maps.find(candidate, partial=position > 0)
                if value is not None:
                    try:
                        return parse_policy(value)
                    except ValueError as error:
                        return TlsPolicyError(f"TLS policy for {key}: {error}")
        except TableUnavailable as error:
            return TlsPolicyError(f"TLS policy lookup for {key} failed: {error}")
        return self.default


@dataclass
class TlsContexts:
    """SSL contexts per (verified, protocol range), made once and shared by all sessions."""

    cafile: str = ""
    capath: str = ""
    verify_match: tuple[str, ...] = ("hostname",)
    secure_match: tuple[str, ...] = ("nexthop", "dot-nexthop")
    loglevel: int = 1
    verify_depth: int = 9
    """*_tls_scert_verifydepth: the DANE-TA chain check looks this far above the leaf."""
    _made: dict[tuple[bool, Any, Any], ssl.SSLContext] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, prefix: str) -> TlsContexts:
        def patterns(name: str) -> tuple[str, ...]:
            found = tuple(item.lower() for item in parse_list(settings.get(name).replace(":", " ")))
            if not found:
                raise ConfigError(f"{settings.where(name)}{name}: no match pattern")
            return found

        loglevel_name = f"{prefix}_tls_loglevel"
        try:
            loglevel = int(settings.get(loglevel_name).strip())
        except ValueError:
            raise ConfigError(
                f"{settings.where(loglevel_name)}{loglevel_name}: not a number"
            ) from None
        contexts = cls(
            settings.get(f"{prefix}_tls_CAfile").strip(),
            settings.get(f"{prefix}_tls_CApath").strip(),
            patterns(f"{prefix}_tls_verify_cert_match"),
            patterns(f"{prefix}_tls_secure_cert_match"),
            loglevel,
            number(settings, f"{prefix}_tls_scert_verifydepth", minimum=1),
        )
        if contexts.cafile or contexts.capath:
            try:
                contexts.context(TlsPolicy(Level.VERIFY))  # a bad CA file is a config error
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(f"{prefix}_tls_CAfile/CApath: cannot load: {error}") from None
        return contexts

    def context(self, policy: TlsPolicy) -> ssl.SSLContext:
        key = (policy.level.verified, policy.minimum_version, policy.maximum_version)
        context = self._made.get(key)
        if context is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            # Names are checked by verified_name() against Postfix's match patterns, which
            # ssl's single-name check_hostname cannot express.
            context.check_hostname = False
            if policy.level.verified:
                context.verify_mode = ssl.CERT_REQUIRED
                if self.cafile or self.capath:
                    context.load_verify_locations(self.cafile or None, self.capath or None)
                else:
                    context.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                context.verify_mode = ssl.CERT_NONE
            if policy.minimum_version is not None:
                context.minimum_version = policy.minimum_version
            if policy.maximum_version is not None:
                context.maximum_version = policy.maximum_version
            self._made[key] = context
        return context

    def patterns(self, policy: TlsPolicy) -> tuple[str, ...]:
        if policy.match:
            return policy.match
        return self.secure_match if policy.level is Level.SECURE else self.verify_match


def expand_patterns(patterns: Sequence[str], hostname: str, nexthop: str) -> list[str]:
    """Match patterns with hostname/nexthop/dot-nexthop replaced by the names they stand for;
    a leading "." means "any subdomain of"."""
    names: list[str] = []
    for pattern in patterns:
        if pattern == "hostname":
            names.append(hostname.lower().rstrip("."))
        elif pattern == "nexthop":
            names.append(nexthop.lower().rstrip("."))
        elif pattern == "dot-nexthop":
            names.append("." + nexthop.lower().rstrip("."))
        else:
            names.append(pattern.lower().rstrip("."))
    return names


def certificate_names(certificate: Mapping[str, Any]) -> list[str]:
    """DNS names of a verified peer certificate (ssl.getpeercert()): subjectAltName DNS
    entries, or the subject's commonName when there are none (RFC 6125 6.4.4)."""
    alt = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    if alt:
        return [str(name).lower().rstrip(".") for name in alt]
    names: list[str] = []
    for rdn in certificate.get("subject", ()):
        for kind, value in rdn:
            if kind == "commonName":
                names.append(str(value).lower().rstrip("."))
    return names


def _name_matches(certificate_name: str, pattern: str) -> bool:
    if pattern.startswith("."):
        domain = pattern[1:]
        base = certificate_name.removeprefix("*.")
        return base.endswith(pattern) or (certificate_name.startswith("*.") and base == domain)
    if certificate_name == pattern:
        return True
    if certificate_name.startswith("*."):
        label, dot, rest = pattern.partition(".")
        return bool(dot and label and rest == certificate_name[2:])
    return False


def verified_name(certificate: Mapping[str, Any], patterns: Sequence[str]) -> str | None:
    """The first certificate name that matches one of the (expanded) patterns, or None."""
    for name in certificate_names(certificate):
        if any(_name_matches(name, pattern) for pattern in patterns):
            return name
    return None


def describe(ssl_object: ssl.SSLObject) -> str:
    """`TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)`, as Postfix logs it."""
    cipher = ssl_object.cipher()
    version = ssl_object.version() or "unknown"
    if cipher is None:
        return f"{version} with cipher unknown"
    name, _protocol, bits = cipher
    return f"{version} with cipher {name} ({bits}/{bits} bits)"
