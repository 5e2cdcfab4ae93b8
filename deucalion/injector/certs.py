"""A self-signed CA and a serving certificate for the injector, for clusters without cert-manager.

The API server only calls a webhook over HTTPS and checks its certificate against the
``caBundle`` of the MutatingWebhookConfiguration. ``make_certificates`` makes a CA and a
certificate for the injector Service's DNS names signed by it; ``write_certificates`` stores the
four PEM files. Needs the ``cryptography`` package (``pip install 'deucalion[injector]'``).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from deucalion.errors import ConfigError

__all__ = [
    "CertificateBundle",
    "make_certificates",
    "service_dns_names",
    "write_certificates",
]

# Clocks in a cluster drift; a certificate valid from a little in the past avoids a window
# in which a freshly made one is "not yet valid" elsewhere.
_BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class CertificateBundle:
    """PEM bytes of a CA certificate and key and of a serving certificate and key it signed."""

    ca_cert_pem: bytes
    ca_key_pem: bytes
    cert_pem: bytes
    key_pem: bytes

    @property
    def ca_bundle(self) -> str:
        """The CA certificate as the base64 the webhook configuration's ``caBundle`` wants."""
        return base64.b64encode(self.ca_cert_pem).decode("ascii")


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = "cluster.local"
) -> list[str]:
    """The names a Service is reached by; the API server uses ``<service>.<namespace>.svc``."""
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{cluster_domain}",
    ]


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_certificates(
    dns_names: Sequence[str],
    *,
    ip_addresses: Sequence[str] = (),
    days: int = 365,
    ca_days: int = 3650,
    common_name: str = "deucalion-injector",
) -> CertificateBundle:
    """Make a CA and a serving certificate for ``dns_names`` (and ``ip_addresses``) signed by it.

    Keys are ECDSA P-256, which the API server accepts and which are quick to make. Raises
    ``ValueError`` when there is no name or an IP address is malformed.
    """
    if not dns_names and not ip_addresses:
        raise ValueError("a serving certificate needs at least one DNS name or IP address")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name}-ca")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
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
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    subject = dns_names[0] if dns_names else ip_addresses[0]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return CertificateBundle(
        ca_cert_pem=ca_cert.public_bytes(serialization.Encoding.PEM),
        ca_key_pem=_key_pem(ca_key),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM),
        key_pem=_key_pem(key),
    )


def write_certificates(
    bundle: CertificateBundle, directory: str | os.PathLike[str]
) -> dict[str, Path]:
    """Write ``ca.crt``, ``ca.key``, ``tls.crt`` and ``tls.key`` into ``directory``.

    The names are those of a ``kubernetes.io/tls`` Secret. Keys are created readable by their
    owner only, a new directory is its owner's only, and no file is written through a symbolic
    link (one in its place is an error). Returns the paths by file name.
    """
    out = Path(directory)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = {
        "ca.crt": (bundle.ca_cert_pem, 0o644),
        "ca.key": (bundle.ca_key_pem, 0o600),
        "tls.crt": (bundle.cert_pem, 0o644),
        "tls.key": (bundle.key_pem, 0o600),
    }
    paths: dict[str, Path] = {}
    for name, (data, mode) in files.items():
        path = out / name
        # Created with its final mode, so a key is never readable by others, not even briefly.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        except OSError as exc:
            why = "it is a symbolic link" if path.is_symlink() else (exc.strerror or str(exc))
            raise ConfigError(
                f"cannot write {path}: {why}; remove it or choose another --out-dir"
            ) from None

        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        paths[name] = path
    return paths
