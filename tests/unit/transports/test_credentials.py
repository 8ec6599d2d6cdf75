"""CredentialsCache: round trip, modes 0600/0700, SDK-compatible layout, corrupted files named clearly."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from simulator.errors import UsageError
from simulator.transports.credentials import (
    CorruptCredentials,
    CredentialsCache,
    DeviceCredentials,
    target_key,
)
from simulator.transports.pairing_client import build_csr, generate_key, key_to_pem

DEV = "AAAAAAAAAAAAAAAAAAAAAA"


def _self_signed(key_pem: bytes) -> bytes:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(key_pem, password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test/{DEV}")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def full_creds() -> DeviceCredentials:
    key_pem = key_to_pem(generate_key())
    return DeviceCredentials("s3cret", key_pem, _self_signed(key_pem), "mqtts://127.0.0.1:8883/")


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_round_trip_and_modes(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    cache = CredentialsCache(tmp_path, target_key("test", "http://127.0.0.1:4003/pairing"))
    assert cache.get(DEV) is None
    cache.put(DEV, full_creds)
    assert cache.get(DEV) == full_creds
    # A second cache object on the same dir (a later run) reads the same thing.
    again = CredentialsCache(tmp_path, target_key("test", "http://127.0.0.1:4003/pairing"))
    assert again.get(DEV) == full_creds
    files = [p for p in cache.base.rglob("*") if p.is_file()]
    assert len(files) == 3
    assert all(_mode(f) == 0o600 for f in files)
    assert all(_mode(d) == 0o700 for d in cache.base.rglob("*") if d.is_dir())
    assert _mode(cache.base) == 0o700


def test_sdk_layout(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    """device_dir is usable as the SDK's persistency_dir: <dir>/<id>/crypto/device.{key,crt}."""
    cache = CredentialsCache(tmp_path, "t")
    cache.put(DEV, full_creds)
    crypto = cache.device_dir(DEV) / DEV / "crypto"
    assert (crypto / "device.key").read_bytes() == full_creds.key_pem
    assert (crypto / "device.crt").read_bytes() == full_creds.cert_pem


def test_keyed_by_target(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    a = CredentialsCache(tmp_path, target_key("r", "http://a/pairing"))
    b = CredentialsCache(tmp_path, target_key("r", "http://b/pairing"))
    a.put(DEV, full_creds)
    assert b.get(DEV) is None
    # An unsafe key is hashed, never used as a path.
    c = CredentialsCache(tmp_path, "../../etc")
    assert c.base.parent == tmp_path


def test_secret_only_then_clear(tmp_path: Path) -> None:
    cache = CredentialsCache(tmp_path, "t")
    cache.put(DEV, DeviceCredentials("only-secret"))
    assert cache.get(DEV) == DeviceCredentials("only-secret", None, None, None)
    cache.clear()
    assert cache.get(DEV) is None


def test_corrupted_secret_names_the_file(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    cache = CredentialsCache(tmp_path, "t")
    cache.put(DEV, full_creds)
    bad = cache.device_dir(DEV) / "credentials.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptCredentials) as err:
        cache.get(DEV)
    assert str(bad) in str(err.value)
    assert isinstance(err.value, UsageError)
    # The discard option drops it and behaves as "never registered".
    assert CredentialsCache(tmp_path, "t", discard_corrupt=True).get(DEV) is None
    assert not bad.exists()


def test_corrupted_certificate_names_the_file(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    cache = CredentialsCache(tmp_path, "t")
    cache.put(DEV, full_creds)
    cache.cert_path(DEV).write_bytes(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    with pytest.raises(CorruptCredentials, match=r"device\.crt"):
        cache.get(DEV)
    got = CredentialsCache(tmp_path, "t", discard_corrupt=True).get(DEV)
    assert got == DeviceCredentials("s3cret", None, None, "mqtts://127.0.0.1:8883/")


def test_wrong_types_in_json(tmp_path: Path) -> None:
    cache = CredentialsCache(tmp_path, "t")
    cache.put(DEV, DeviceCredentials("x"))
    (cache.device_dir(DEV) / "credentials.json").write_text(json.dumps({"credentials_secret": 3}))
    with pytest.raises(CorruptCredentials, match="credentials_secret"):
        cache.get(DEV)


def test_csr_subject_like_the_sdk() -> None:
    from cryptography import x509

    csr = x509.load_pem_x509_csr(build_csr("test", DEV, generate_key()))
    assert csr.subject.rfc4514_string() == f"CN=test/{DEV},O=Devices"
    assert csr.is_signature_valid


def test_one_cache_per_target_adopts_the_former_sdk_cache(tmp_path: Path, full_creds: DeviceCredentials) -> None:
    url = "https://127.0.0.1:4003/pairing"
    key = target_key("fleetsim", url)
    # A device the sdk transport registered before the caches were shared: <root>/sdk/<target key>/<id>.
    CredentialsCache(tmp_path / "sdk", key).put(DEV, full_creds)
    shared = CredentialsCache.for_target(tmp_path, "fleetsim", "https://127.0.0.1:5999/pairing")  # new port
    assert shared.base == tmp_path / key
    assert shared.get(DEV) == full_creds and shared.device_ids() == [DEV]
    assert not (tmp_path / "sdk").joinpath(key).exists()
    # The shared copy wins over anything left behind later.
    CredentialsCache(tmp_path / "sdk", key).put(DEV, DeviceCredentials("stale"))
    again = CredentialsCache.for_target(tmp_path, "fleetsim", url)
    assert again.get(DEV) == full_creds
