"""Throwaway certificates for TLS tests, made with `cryptography` at test time.

    root = make_ca("Test Root")
    intermediate = make_ca("Test Intermediate", issuer=root)
    leaf = make_leaf(["mx.example.test"], issuer=intermediate)
    leaf.write(directory, "server", chain=[intermediate])   # server.pem (leaf + chain), .key

Keys are EC P-256 unless a test asks for another kind: fast to make, and every TLS stack
takes them. Nothing here is secret: the keys live in the test's temp folder.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
KeyKind = Literal["ec", "rsa", "ed25519"]
DAY = datetime.timedelta(days=1)


def new_key(kind: KeyKind = "ec") -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def spki(self) -> bytes:
        """The DER SubjectPublicKeyInfo: what a TLSA record with selector 1 is made from."""
        return self.certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def tlsa(self, usage: int, selector: int, matching: int) -> str:
        """TLSA rdata text for this certificate: `3 1 1 <hex>`."""
        selected = self.der if selector == 0 else self.spki
        if matching == 1:
            selected = hashlib.sha256(selected).digest()
        elif matching == 2:
            selected = hashlib.sha512(selected).digest()
        return f"{usage} {selector} {matching} {selected.hex()}"

    def write(self, directory: Path, name: str, chain: Sequence[Issued] = ()) -> tuple[Path, Path]:
        """NAME.pem (this certificate, then the chain) and NAME.key; returns both paths."""
        certificate = directory / f"{name}.pem"
        certificate.write_bytes(b"".join([self.pem, *(issued.pem for issued in chain)]))
        key = directory / f"{name}.key"
        key.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return certificate, key


def _sign(builder: x509.CertificateBuilder, key: PrivateKey) -> x509.Certificate:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _builder(
    subject: x509.Name,
    issuer: Issued | None,
    key: PrivateKey,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - DAY)
        .not_valid_after(not_after or now + 30 * DAY)
    )


def make_ca(
    common_name: str,
    issuer: Issued | None = None,
    *,
    kind: KeyKind = "ec",
    path_length: int | None = None,
    ca: bool = True,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A CA certificate, self-signed when issuer is None. ca=False makes a certificate that
    claims no CA rights (basicConstraints CA:FALSE) for tests that must refuse it as issuer."""
    key = new_key(kind)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = _builder(subject, issuer, key, not_before, not_after).add_extension(
        x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    return Issued(_sign(builder, key if issuer is None else issuer.key), key)


def make_leaf(
    names: Sequence[str],
    issuer: Issued | None = None,
    *,
    kind: KeyKind = "ec",
    common_name: str | None = None,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A server certificate with `names` as subjectAltName DNS names (none when empty);
    self-signed when issuer is None. The subject's CN is common_name, else the first name."""
    key = new_key(kind)
    cn = common_name if common_name is not None else (names[0] if names else "server")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = _builder(subject, issuer, key, not_before, not_after).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False
        )
    return Issued(_sign(builder, key if issuer is None else issuer.key), key)
