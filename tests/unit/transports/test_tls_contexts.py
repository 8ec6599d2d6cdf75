"""DeviceContexts: a device gets its own TLS context at its first connect, keeps it while its certificate
files do not change, and the cache never grows past its capacity."""

from __future__ import annotations

import datetime as dt
import os
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.transports.tls_contexts import DeviceContexts


def _write_pair(directory: Path, cn: str) -> tuple[str, str]:
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    crt, pem = directory / "device.crt", directory / "device.key"
    tmp_crt, tmp_key = directory / "device.crt.tmp", directory / "device.key.tmp"
    tmp_crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    tmp_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    os.replace(tmp_crt, crt)  # a new inode, as CredentialsCache.put writes them
    os.replace(tmp_key, pem)
    return str(crt), str(pem)


def _factory() -> ssl.SSLContext:
    return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)


def test_one_context_per_device_kept_across_connects(tmp_path: Path) -> None:
    contexts = DeviceContexts(_factory, capacity=10)
    pair = _write_pair(tmp_path / "a", "realm/a")
    own = contexts.context_for(*pair)
    assert isinstance(own, ssl.SSLContext) and own.verify_mode == ssl.CERT_REQUIRED and own.check_hostname
    assert contexts.context_for(*pair) is own and contexts.created == 1 and len(contexts) == 1


def test_a_new_certificate_gets_a_new_context(tmp_path: Path) -> None:
    contexts = DeviceContexts(_factory, capacity=10)
    pair = _write_pair(tmp_path / "a", "realm/a")
    first = contexts.context_for(*pair)
    assert _write_pair(tmp_path / "a", "realm/a") == pair  # re-certified: same paths, new files
    second = contexts.context_for(*pair)
    assert second is not None and second is not first and contexts.created == 2 and len(contexts) == 1


def test_past_capacity_devices_keep_the_shared_context(tmp_path: Path) -> None:
    contexts = DeviceContexts(_factory, capacity=2)
    pairs = [_write_pair(tmp_path / str(i), f"realm/{i}") for i in range(3)]
    for _ in range(2):  # the third device never gets one, not even when it connects again
        outcomes = [contexts.context_for(*p) is not None for p in pairs]
    assert outcomes == [True, True, False] and len(contexts) == 2 and contexts.over_capacity == 2


def test_unreadable_files_raise_as_load_cert_chain_does(tmp_path: Path) -> None:
    contexts = DeviceContexts(_factory, capacity=2)
    pair = _write_pair(tmp_path / "a", "realm/a")
    Path(pair[1]).write_bytes(b"not a key")
    with pytest.raises(ssl.SSLError):
        contexts.context_for(*pair)
    assert len(contexts) == 0
