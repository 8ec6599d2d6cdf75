"""LocalCA: key files 0600 and reused, CSR checks, certificate verification causes (no network)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID

from simulator.backend.ca import LocalCA


def _csr(cn: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Devices"),
                    x509.NameAttribute(NameOID.COMMON_NAME, cn),
                ]
            )
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def test_ensure_creates_private_keys_and_reuses_them(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    ca.ensure()
    assert stat.S_IMODE(ca.ca_key_path.stat().st_mode) == 0o600
    pem = ca.ca_cert_pem
    again = LocalCA(tmp_path)
    assert again.ca_cert_pem == pem
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca is True


def test_server_cert_has_ip_and_dns_sans(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    cert_path, key_path = ca.server_cert(("127.0.0.1", "localhost"))
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_sign_csr_keeps_subject_and_checks_cn(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    pem = ca.sign_csr(_csr("fleetsim/AAAAAAAAAAAAAAAAAAAAAA"), "fleetsim/AAAAAAAAAAAAAAAAAAAAAA")
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.subject.rfc4514_string() == "CN=fleetsim/AAAAAAAAAAAAAAAAAAAAAA,O=Devices"
    assert ca.verify_cert(pem, "fleetsim/AAAAAAAAAAAAAAAAAAAAAA") == (True, "")
    assert ca.verify_cert(pem, "fleetsim/BBBBBBBBBBBBBBBBBBBBBB") == (False, "INVALID_SUBJECT")
    with pytest.raises(ValueError, match="common name"):
        ca.sign_csr(_csr("fleetsim/other"), "fleetsim/AAAAAAAAAAAAAAAAAAAAAA")
    with pytest.raises(ValueError, match="unparsable"):
        ca.sign_csr(b"not a csr", "x")


def test_sign_csr_rejects_a_bad_signature(tmp_path: Path) -> None:
    good = x509.load_pem_x509_csr(_csr("r/d"))
    der = bytearray(good.public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # flip a bit inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(ValueError):
        LocalCA(tmp_path).sign_csr(tampered, "r/d")


def test_verify_cert_rejects_other_ca_and_garbage_and_expired(tmp_path: Path) -> None:
    ca, other = LocalCA(tmp_path / "a"), LocalCA(tmp_path / "b")
    foreign = other.sign_csr(_csr("r/d"), "r/d")
    assert ca.verify_cert(foreign, "r/d") == (False, "INVALID_ISSUER")
    assert ca.verify_cert(b"garbage", "r/d") == (False, "INVALID_ENCODING")
    # validity 0 s: not_after = now, so it is expired by the time it is checked (backdated not_before).
    expired = ca.sign_csr(_csr("r/d"), "r/d", validity_s=-1)
    assert ca.verify_cert(expired, "r/d") == (False, "EXPIRED")


def test_client_cert_is_reused(tmp_path: Path) -> None:
    ca = LocalCA(tmp_path)
    first = ca.issue_client_cert("fleetsim-admin")
    content = first[0].read_bytes()
    assert ca.issue_client_cert("fleetsim-admin") == first
    assert first[0].read_bytes() == content
    assert ca.verify_cert(content, "fleetsim-admin") == (True, "")
