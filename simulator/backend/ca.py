"""The embedded backend's local certificate authority.

Astarte's Pairing API signs a device CSR with the realm's CA and the broker trusts exactly that CA; the
device's identity is the certificate CN `<realm>/<device_id>` (docs/protocol.md section 2, astarte_pairing
`credentials_secret` flow; the broker maps the CN to the topic prefix, astarte_vmq_plugin). This module plays
the CA: one EC P-256 key (fast to sign: ~0.1 ms per certificate versus ~2 ms with RSA-2048), a self-signed
root, a server certificate for the pairing HTTPS server and the MQTT broker, client certificates for
privileged identities (the collector / campaign driver) and device certificates from CSRs.

Files in `state_dir` (keys 0600, reused on later runs so cached device credentials stay valid):
`ca.key`, `ca.crt`, `server.key`, `server.crt`, `<cn>.key`, `<cn>.crt` for issued privileged identities.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from simulator.private_files import write_private

__all__ = ["DEFAULT_DEVICE_CERT_VALIDITY_S", "LocalCA"]

# Device certificates: Astarte issues them for a limited time and the SDK re-verifies on every connect
# (astarte/device/pairing_handler.py `verify_certificate`); 30 days outlives any load test.
DEFAULT_DEVICE_CERT_VALIDITY_S = 30 * 24 * 3600
_CA_VALIDITY = dt.timedelta(days=3650)
_SERVER_VALIDITY = dt.timedelta(days=825)
# Backdate `not_valid_before` a little so a client whose clock is slightly behind still accepts (seconds).
_BACKDATE = dt.timedelta(minutes=5)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_public(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class LocalCA:
    """A file-backed CA; thread-safe (the pairing server signs CSRs from many threads)."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = Path(state_dir)
        self._lock = threading.Lock()
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._cert: x509.Certificate | None = None

    # -- paths / material --------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self._dir

    @property
    def ca_cert_path(self) -> Path:
        return self._dir / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self._dir / "ca.key"

    @property
    def ca_cert_pem(self) -> bytes:
        self.ensure()
        return self.ca_cert_path.read_bytes()

    @property
    def ca_certificate(self) -> x509.Certificate:
        self.ensure()
        assert self._cert is not None
        return self._cert

    def ensure(self) -> None:
        """Create the CA key and self-signed certificate on first use; load them on later runs."""
        with self._lock:
            if self._key is not None:
                return
            self._dir.mkdir(parents=True, exist_ok=True)
            if self.ca_key_path.exists() and self.ca_cert_path.exists():
                key = serialization.load_pem_private_key(self.ca_key_path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise ValueError(f"{self.ca_key_path}: not an EC private key")
                self._key = key
                self._cert = x509.load_pem_x509_certificate(self.ca_cert_path.read_bytes())
                return
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetsim"),
                x509.NameAttribute(NameOID.COMMON_NAME, "fleetsim local CA"),
            ])
            now = _now()
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _BACKDATE)
                .not_valid_after(now + _CA_VALIDITY)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True, content_commitment=False, key_encipherment=False,
                        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                        encipher_only=False, decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256())
            )
            write_private(self.ca_key_path, _key_pem(key))
            _write_public(self.ca_cert_path, cert.public_bytes(serialization.Encoding.PEM))
            self._key, self._cert = key, cert

    def _signer(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        self.ensure()
        assert self._key is not None and self._cert is not None
        return self._key, self._cert

    def _build(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        validity: dt.timedelta,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        key, ca = self._signer()
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(key, hashes.SHA256())

    # -- issuing -----------------------------------------------------------------------------------

    def server_cert(self, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> tuple[Path, Path]:
        """(cert path, key path) of a TLS server certificate whose SANs are `hosts` (IPs as IP, names as DNS).

        Re-issued on every call (cheap) so that a changed host list never leaves a stale certificate.
        """
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetsim"),
            x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost"),
        ])
        cert = self._build(subject, key.public_key(), _SERVER_VALIDITY, ExtendedKeyUsageOID.SERVER_AUTH, sans)
        cert_path, key_path = self._dir / "server.crt", self._dir / "server.key"
        write_private(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def issue_client_cert(self, cn: str) -> tuple[Path, Path]:
        """(cert path, key path) of a client certificate with CN `cn` ("fleetsim-admin" for the collector).

        Reused when a valid one from this CA already exists in the state dir.
        """
        safe = _SAFE_NAME.sub("_", cn)
        cert_path, key_path = self._dir / f"{safe}.crt", self._dir / f"{safe}.key"
        if cert_path.exists() and key_path.exists():
            ok, _ = self.verify_cert(cert_path.read_bytes(), cn)
            if ok:
                return cert_path, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        cert = self._build(subject, key.public_key(), _SERVER_VALIDITY, ExtendedKeyUsageOID.CLIENT_AUTH)
        write_private(key_path, _key_pem(key))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cert_path, key_path

    def sign_csr(
        self, csr_pem: bytes, expected_cn: str, validity_s: int = DEFAULT_DEVICE_CERT_VALIDITY_S
    ) -> bytes:
        """Sign a device CSR; the certificate keeps the CSR's subject (the SDK sends O=Devices, CN=realm/id).

        Raises ValueError when the CSR is unparsable, its self-signature is bad, its CN is not `expected_cn`,
        or its key is not EC/RSA.
        """
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError as exc:
            raise ValueError(f"unparsable CSR: {exc}") from None
        if not csr.is_signature_valid:
            raise ValueError("CSR signature is not valid")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        if cn != expected_cn:
            raise ValueError(f"CSR common name {cn!r} is not {expected_cn!r}")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            # The SDK always makes EC P-256 keys (astarte/device/crypto.py); anything else is not our device.
            raise ValueError("CSR key is not an EC key")
        cert = self._build(
            csr.subject, public_key, dt.timedelta(seconds=validity_s), ExtendedKeyUsageOID.CLIENT_AUTH
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def verify_cert(self, cert_pem: bytes, expected_cn: str) -> tuple[bool, str]:
        """(valid?, cause): signed by this CA, within its validity window and with CN `expected_cn`.

        Causes mirror astarte_pairing's verify answers: "INVALID_ISSUER", "EXPIRED", "INVALID_SUBJECT",
        "INVALID_ENCODING"; "" when valid.
        """
        _, ca = self._signer()
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            return False, "INVALID_ENCODING"
        if cert.issuer != ca.subject:
            return False, "INVALID_ISSUER"
        ca_key = ca.public_key()
        assert isinstance(ca_key, ec.EllipticCurvePublicKey)
        try:
            hash_alg = cert.signature_hash_algorithm
            if hash_alg is None:
                return False, "INVALID_ISSUER"
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hash_alg))
        except InvalidSignature:
            return False, "INVALID_ISSUER"
        now = _now()
        if not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
            return False, "EXPIRED"
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if not cns or str(cns[0].value) != expected_cn:
            return False, "INVALID_SUBJECT"
        return True, ""

    @staticmethod
    def validity_window(cert_pem: bytes) -> tuple[dt.datetime, dt.datetime]:
        """(not before, not after), UTC, of a PEM certificate; for the verify answer's timestamp/until."""
        cert = x509.load_pem_x509_certificate(cert_pem)
        return cert.not_valid_before_utc, cert.not_valid_after_utc
