"""DANE for the SMTP client: TLSA lookups and certificate chain matching (RFC 7672).

    lookup = lookup_tlsa(resolver, "mx.example.com", 25)
        -> TlsaLookup(records=(TlsaRecord(3, 1, 1, b"..."),), secure=True,
                      base_domain="mx.example.com", names=("mx.example.com",))
    lookup.effective_level                  # "dane" | "encrypt" | "may" | "defer"
    chain = peer_chain(ssl_object)          # after the handshake: DER, leaf first
    dane_verify(chain, lookup.usable, lookup.names)  # None, or why the chain does not match

What the SMTP client does with it (RFC 7672 2.2, as Postfix's smtp_tls_security_level = dane):
a destination whose MX and address lookups were not all validated (Destination.secure is
False) gets `may`; otherwise the TLSA RRset of `_PORT._tcp.HOST` decides (effective_level):
a lookup failure (SERVFAIL, which is also what a validating resolver answers for a bogus
signature, or a timeout) defers delivery to that host ("defer"); an insecure answer, or a
validated denial (NXDOMAIN, NODATA), is `may`; records of which none is usable make TLS
mandatory without authentication (`encrypt`, RFC 7672 2.2); usable records make TLS
mandatory and the peer's chain must match one of them (`dane`), else 4.7.5.

Trust: the AD bit of the configured resolver (smtp_dns_resolver_address, with
smtp_dns_support_level = dnssec; see mta.dns.resolver) is trusted as Postfix trusts it, so
that resolver must validate and be reached over a trusted path (loopback). Nothing the TLS
peer sends is trusted until dane_verify() has matched it; parsing errors are refusals.

Lookups (RFC 7672 2.2.2, RFC 7671 7): when the host's address records came through a CNAME
and that expansion was validated, TLSA records are looked up first at the expanded name (it
becomes the TLSA base domain); when that name securely has none, at the host name as given.
An expansion that was not validated is not followed: only the host name as given is used.
A CNAME met by the TLSA query itself is followed by the resolver and covered by its AD bit.
Answers come from, and are kept in, the NextHopResolver's TTL cache; failures are not cached.
At most MAX_TLSA_RECORDS records are considered.

Matching (RFC 6698, RFC 7218 names, RFC 7671, RFC 7672 3.1):
  * usable: usage DANE-TA(2) or DANE-EE(3), selector Cert(0) or SPKI(1), matching Full(0),
    SHA2-256(1) or SHA2-512(2) with a digest of the right length. PKIX-TA(0) and PKIX-EE(1)
    are unusable for SMTP (RFC 7672 3.1.3), as are unknown values.
  * DANE-EE(3): the leaf's certificate (0) or SubjectPublicKeyInfo (1) matches; no name
    check, no validity dates (RFC 7672 3.1.1): the record *is* the server's identity.
  * DANE-TA(2): a path is built from the leaf up through the certificates the server sent
    (in any order; extra ones are ignored): each step takes a sent certificate whose subject
    is the current certificate's issuer and whose key verifies its signature (RSA PKCS#1
    v1.5 and PSS, ECDSA, Ed25519, Ed448), and which may issue certificates (basicConstraints
    CA:TRUE, keyCertSign when keyUsage is present, pathLenConstraint obeyed). The path ends
    at a sent certificate above the leaf that matches a record (a leaf is never its own
    trust anchor), or at a trust anchor the server left out that a record carries whole,
    `2 0 0` (its certificate) or `2 1 0` (its public key), whose key signs the top of the
    path. Digest records of an anchor that was not sent (`2 0 1`, `2 1 1`, ...) cannot be
    checked and match nothing (RFC 7671 5.2.2 asks servers to send the anchor). Every
    certificate below the anchor must be within its validity dates and carry no unknown
    critical extension; the anchor's own dates are not checked (DNS vouches for it). The
    leaf must then carry one of the reference identifiers (RFC 7672 3.2.2: the TLSA base
    domain and the MX host name) as a subjectAltName DNS name, or as its subject commonName
    when it has no DNS name (RFC 6125); a `*` is a whole left-most label and stands for
    exactly one label.
  * At most `depth_limit` certificates above the leaf are looked at (Postfix's
    smtp_tls_scert_verifydepth, default 9).

peer_chain() reads the chain as the server sent it: Python 3.13's public
get_unverified_chain(), on older versions the same method of the private _sslobj (3.10+), and
the leaf alone when neither exists (DANE-EE still works then; DANE-TA needs the chain).

Parameters: none read here; the session passes smtp_tls_scert_verifydepth as depth_limit.
"""

from __future__ import annotations

import _ssl
import datetime
import hashlib
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import dns.exception
import dns.rdatatype
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.utils import CryptographyDeprecationWarning

from mta.dns.resolver import DnsTemporaryError, NextHopResolver

USAGE_PKIX_TA, USAGE_PKIX_EE, USAGE_DANE_TA, USAGE_DANE_EE = 0, 1, 2, 3
SELECTOR_CERT, SELECTOR_SPKI = 0, 1
MATCHING_FULL, MATCHING_SHA256, MATCHING_SHA512 = 0, 1, 2
_DIGEST_SIZE = {MATCHING_SHA256: 32, MATCHING_SHA512: 64}
MAX_TLSA_RECORDS = 100  # far more than any real RRset; the rest are ignored
DEFAULT_DEPTH_LIMIT = 9  # Postfix's smtp_tls_scert_verifydepth

EffectiveLevel = Literal["dane", "encrypt", "may", "defer"]


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    """One TLSA record: certificate usage, selector, matching type, association data."""

    usage: int
    selector: int
    matching_type: int
    data: bytes

    @property
    def usable(self) -> bool:
        """DANE-TA or DANE-EE with a known selector and matching type (RFC 7672 3.1)."""
        if self.usage not in (USAGE_DANE_TA, USAGE_DANE_EE):
            return False
        if self.selector not in (SELECTOR_CERT, SELECTOR_SPKI):
            return False
        if self.matching_type == MATCHING_FULL:
            return bool(self.data)
        return len(self.data) == _DIGEST_SIZE.get(self.matching_type, -1)

    @classmethod
    def from_text(cls, text: str) -> TlsaRecord:
        """From presentation format, `3 1 1 0a1b...` (the hex may be split by spaces)."""
        usage, selector, matching, *data = text.split()
        return cls(int(usage), int(selector), int(matching), bytes.fromhex("".join(data)))

    def __str__(self) -> str:
        return f"{self.usage} {self.selector} {self.matching_type} {self.data.hex()}"


@dataclass(frozen=True, slots=True)
class TlsaLookup:
    """The TLSA RRset for one host and port and how far it can be trusted.

    secure: the answer (records or their absence) was validated. temporary_failure: why the
    lookup failed for now (the host must not be used now). base_domain: the name the records
    were found for, names: the reference identifiers for DANE-TA name checks (RFC 7672 3.2.2).
    """

    records: tuple[TlsaRecord, ...]
    secure: bool
    temporary_failure: str | None = None
    base_domain: str = ""
    names: tuple[str, ...] = ()

    @property
    def usable(self) -> tuple[TlsaRecord, ...]:
        return tuple(record for record in self.records if record.usable)

    @property
    def effective_level(self) -> EffectiveLevel:
        """What smtp_tls_security_level = dane becomes for this host (RFC 7672 2.2)."""
        if self.temporary_failure is not None:
            return "defer"
        if not self.secure or not self.records:
            return "may"
        return "dane" if self.usable else "encrypt"


# -- lookups -------------------------------------------------------------------------------


def _parse_records(texts: Sequence[str]) -> tuple[TlsaRecord, ...]:
    records: list[TlsaRecord] = []
    for text in texts[:MAX_TLSA_RECORDS]:
        try:
            records.append(TlsaRecord.from_text(text))
        except ValueError:  # not from dnspython's to_text(); skip rather than trust
            continue
    return tuple(records)


def lookup_tlsa(resolver: NextHopResolver, host: str, port: int) -> TlsaLookup:
    """The TLSA records for `_PORT._tcp.HOST`, following a validated CNAME of the host first."""
    host = host.lower().rstrip(".")
    try:
        expanded, expansion_secure = resolver.host_alias(host)
    except DnsTemporaryError as error:
        return TlsaLookup((), False, f"address lookup for {host} failed: {error}", host, (host,))
    except dns.exception.DNSException as error:
        return TlsaLookup((), False, f"bad host name {host}: {error}", host, (host,))
    bases = [expanded, host] if expansion_secure and expanded != host else [host]
    for base in bases:
        qname = f"_{port}._tcp.{base}"
        names = tuple(dict.fromkeys((base, host)))
        try:
            answer = resolver.lookup(qname, dns.rdatatype.TLSA)
        except DnsTemporaryError as error:
            return TlsaLookup((), False, f"TLSA lookup error for {qname}: {error}", base, names)
        except dns.exception.DNSException as error:
            return TlsaLookup((), False, f"bad TLSA name {qname}: {error}", base, names)
        records = _parse_records(answer.records)
        if not answer.secure:
            return TlsaLookup(records, False, None, base, names)
        if records:
            return TlsaLookup(records, True, None, base, names)
        # a validated denial: try the host name as given, if that is still to come
    return TlsaLookup((), True, None, host, (host,))


# -- the peer's chain ------------------------------------------------------------------------


def peer_chain(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    """The certificates the peer sent, DER-encoded, leaf first ([] when it sent none)."""
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python 3.13: a list of DER bytes
        chain = public()
        if chain:
            return [bytes(der) for der in chain]
    private: Any = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:  # 3.10 to 3.12: _ssl.Certificate objects
        certificates = private()
        if certificates:
            return [bytes(cert.public_bytes(_ssl.ENCODING_DER)) for cert in certificates]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []


# -- matching ---------------------------------------------------------------------------------


def _load(der: bytes) -> x509.Certificate:
    """Parse a DER certificate (ValueError if it is not one), quietly: what a peer sends is
    not ours to warn about (cryptography warns about, e.g., a serial number that is not
    positive, and will refuse such certificates later, which is a refusal here too)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        return x509.load_der_x509_certificate(der)


def _public_key(certificate: x509.Certificate) -> CertificatePublicKeyTypes | None:
    try:
        return certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return None


def _key_spki(key: CertificatePublicKeyTypes | None) -> bytes | None:
    """The DER SubjectPublicKeyInfo of a key, what selector SPKI(1) records select."""
    if key is None:
        return None
    try:
        return key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        return None


def _spki(certificate: x509.Certificate) -> bytes | None:
    return _key_spki(_public_key(certificate))


def _associated(record: TlsaRecord, selected: bytes | None) -> bool:
    """Does the selected content (a DER certificate or SPKI) match the record's data?"""
    if selected is None:
        return False
    if record.matching_type == MATCHING_SHA256:
        return hashlib.sha256(selected).digest() == record.data
    if record.matching_type == MATCHING_SHA512:
        return hashlib.sha512(selected).digest() == record.data
    return selected == record.data


def _matches(record: TlsaRecord, der: bytes, spki: bytes | None) -> bool:
    """Does the record select and match this certificate (its DER bytes, its SPKI)?"""
    return _associated(record, der if record.selector == SELECTOR_CERT else spki)


def _signed_by(certificate: x509.Certificate, key: CertificatePublicKeyTypes | None) -> bool:
    """Does key verify certificate's signature (with the algorithm the certificate names)?"""
    signature, tbs = certificate.signature, certificate.tbs_certificate_bytes
    try:
        parameters = certificate.signature_algorithm_parameters
        algorithm = certificate.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey):
            if not isinstance(parameters, padding.PSS | padding.PKCS1v15) or algorithm is None:
                return False
            key.verify(signature, tbs, parameters, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(parameters, ec.ECDSA):
                return False
            key.verify(signature, tbs, parameters)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            if parameters is not None:
                return False
            key.verify(signature, tbs)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _issuer_problem(issuer: x509.Certificate, below: int) -> str | None:
    """Why issuer may not sign: not a CA, no keyCertSign, or `below` CAs under it too many."""
    try:
        constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return "an issuer is not a CA (no basicConstraints)"
    if not constraints.ca:
        return "an issuer is not a CA (basicConstraints CA:FALSE)"
    if constraints.path_length is not None and below > constraints.path_length:
        return "an issuer's pathLenConstraint is exceeded"
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return None if usage.key_cert_sign else "an issuer's keyUsage lacks keyCertSign"


def _certificate_problem(certificate: x509.Certificate, now: datetime.datetime) -> str | None:
    """Expiry and unknown critical extensions of a certificate below the trust anchor."""
    if now < certificate.not_valid_before_utc:
        return "a certificate in the chain is not yet valid"
    if now > certificate.not_valid_after_utc:
        return "a certificate in the chain has expired"
    for extension in certificate.extensions:
        if extension.critical and isinstance(extension.value, x509.UnrecognizedExtension):
            return f"unknown critical extension {extension.oid.dotted_string}"
    return None


def _certificate_names(certificate: x509.Certificate) -> list[str]:
    """subjectAltName DNS names, or the subject's commonName when there are none."""
    try:
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = alt.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(
                x509.oid.NameOID.COMMON_NAME
            )
        ]
    return [name.lower().rstrip(".") for name in names]


def _name_matches(certificate_name: str, reference: str) -> bool:
    if certificate_name == reference:
        return True
    if not certificate_name.startswith("*."):
        return False
    label, dot, rest = reference.partition(".")
    return bool(label and dot and "." in rest and rest == certificate_name[2:])


AnchorKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)


@dataclass(frozen=True, slots=True)
class _FullAnchor:
    """A trust anchor carried whole by a `2 0 0` (certificate) or `2 1 0` (key) record."""

    key: CertificatePublicKeyTypes
    spki: bytes
    certificate: x509.Certificate | None


def _full_anchors(records: Sequence[TlsaRecord]) -> list[_FullAnchor]:
    anchors: list[_FullAnchor] = []
    for record in records:
        if record.matching_type != MATCHING_FULL:
            continue
        try:
            if record.selector == SELECTOR_CERT:
                certificate = _load(record.data)
                certificate_key = _public_key(certificate)
                spki = _key_spki(certificate_key)
                if certificate_key is not None and spki is not None:
                    anchors.append(_FullAnchor(certificate_key, spki, certificate))
            else:
                key = serialization.load_der_public_key(record.data)
                if isinstance(key, AnchorKey):
                    anchors.append(_FullAnchor(key, record.data, None))
        except (ValueError, UnsupportedAlgorithm):
            continue
    return anchors


def _below_anchor_problem(path: Sequence[x509.Certificate], now: datetime.datetime) -> str | None:
    """Validity dates and unknown critical extensions of the certificates below the anchor."""
    for certificate in path:
        problem = _certificate_problem(certificate, now)
        if problem is not None:
            return problem
    return None


def _trust_anchor_problem(
    certificates: Sequence[x509.Certificate],
    ders: Sequence[bytes],
    records: Sequence[TlsaRecord],
    now: datetime.datetime,
) -> str | None:
    """None when some DANE-TA record anchors a valid path from the leaf, else why not.

    The path is built from the leaf up through the certificates the server sent, in any
    order: each step takes a sent certificate whose subject is the current issuer name and
    whose key verifies the current signature, and that may issue certificates.
    """
    anchors = _full_anchors(records)
    path = [0]
    while True:
        current = certificates[path[-1]]
        depth = len(path) - 1
        current_spki = _spki(current)
        if depth >= 1 and any(_matches(record, ders[path[-1]], current_spki) for record in records):
            return _below_anchor_problem([certificates[index] for index in path[:-1]], now)
        for anchor in anchors:
            if anchor.spki == current_spki:
                continue  # a certificate is never its own trust anchor
            if anchor.certificate is not None and current.issuer != anchor.certificate.subject:
                continue
            if not _signed_by(current, anchor.key):
                continue
            if anchor.certificate is not None:
                problem = _issuer_problem(anchor.certificate, depth)
                if problem is not None:
                    return problem
            return _below_anchor_problem([certificates[index] for index in path], now)
        issuers = [
            index
            for index in range(1, len(certificates))
            if index not in path
            and certificates[index].subject == current.issuer
            and _signed_by(current, _public_key(certificates[index]))
        ]
        if not issuers:
            return "no DANE-TA record matched the server's chain"
        problem = _issuer_problem(certificates[issuers[0]], depth)
        if problem is not None:
            return problem
        path.append(issuers[0])


def dane_verify(
    chain_der: Sequence[bytes],
    records: Sequence[TlsaRecord],
    names: Sequence[str],
    *,
    depth_limit: int = DEFAULT_DEPTH_LIMIT,
    now: datetime.datetime | None = None,
) -> str | None:
    """None when the peer's chain (DER, leaf first) matches a usable record, else why not."""
    usable = [record for record in records[:MAX_TLSA_RECORDS] if record.usable]
    if not usable:
        return "no usable TLSA records"
    if not chain_der:
        return "the server sent no certificate"
    ders = [bytes(der) for der in chain_der[: depth_limit + 1]]
    # DANE-EE 3 0 x needs only the bytes, not a parsed certificate
    if any(
        record.usage == USAGE_DANE_EE
        and record.selector == SELECTOR_CERT
        and _associated(record, ders[0])
        for record in usable
    ):
        return None
    try:
        leaf = _load(ders[0])
    except ValueError as error:
        return f"the server certificate cannot be parsed: {error}"
    leaf_spki = _spki(leaf)
    if any(
        _matches(record, ders[0], leaf_spki) for record in usable if record.usage == USAGE_DANE_EE
    ):
        return None
    anchors = [record for record in usable if record.usage == USAGE_DANE_TA]
    if not anchors:
        return "no DANE-EE TLSA record matched the server certificate"
    certificates = [leaf]
    for der in ders[1:]:
        try:
            certificates.append(_load(der))
        except ValueError:
            break  # what follows cannot be part of a chain we can check
    try:
        problem = _trust_anchor_problem(
            certificates, ders, anchors, now or datetime.datetime.now(datetime.UTC)
        )
        if problem is not None:
            return f"DANE-TA: {problem}"
        wanted = [name.lower().rstrip(".") for name in names]
        found = _certificate_names(leaf)
    except (ValueError, UnsupportedAlgorithm) as error:  # parsed lazily, when read
        return f"a certificate in the chain cannot be parsed: {error}"
    if any(_name_matches(name, reference) for name in found for reference in wanted):
        return None
    shown = ", ".join(found[:5]) or "none"
    return f"DANE-TA: server certificate names ({shown}) match none of {', '.join(wanted)}"
