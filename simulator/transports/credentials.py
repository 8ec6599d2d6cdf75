"""On-disk cache of device credentials (secret, key, certificate, broker URL), keyed by target and device.

Registering a device (Pairing API `POST /agent/devices`) works once per device id: once the device has asked
for a certificate, a second registration answers 422, so the secret must survive the run that obtained it. Key
and certificate are kept too, so that a restarted load test reconnects 10,000 devices without 10,000 CSRs.

ONE cache per target, shared by both transports (`CredentialsCache.for_target`): the same device has the same
secret and certificate whichever transport connects it, so a state dir can switch between `--transport lean`
and `--transport sdk` (separate caches made the second transport fail: 422 or "secret not in the cache").
`fleetsim devices list|unregister|forget` reads and clears it.

Layout (dirs 0700, files 0600; created with those modes, never world-readable even briefly):

    <root>/<target_key>/<device_id>/credentials.json        {"credentials_secret": ..., "broker_url": ...}
    <root>/<target_key>/<device_id>/<device_id>/crypto/device.key   EC P-256, PEM TraditionalOpenSSL
    <root>/<target_key>/<device_id>/<device_id>/crypto/device.crt   PEM

The `crypto/` location and the key format are those astarte-device-sdk 0.14.0 uses under
its `persistency_dir` (astarte/device/device_mqtt.py `__init__`, crypto.py `generate_csr`), so
`device_dir(id)` can be passed as the SDK's persistency_dir: the SDK and the lean transport share one set of
credentials.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from simulator.errors import UsageError
from simulator.private_files import write_private

__all__ = ["CorruptCredentials", "CredentialsCache", "DeviceCredentials", "target_key"]

# Where the sdk transport kept its own cache before the caches were shared (under the credentials root).
_LEGACY_SDK_DIR = "sdk"

_LOG = logging.getLogger(__name__)
_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_UNSAFE_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SECRET_FILE = "credentials.json"


@dataclass(frozen=True)
class DeviceCredentials:
    """What a device needs to connect. key/cert None = not obtained yet; broker_url None = ask Pairing."""

    secret: str
    key_pem: bytes | None = None
    cert_pem: bytes | None = None
    broker_url: str | None = None


class CorruptCredentials(UsageError):
    """A cache file that cannot be read back; names the file. Delete it or open the cache with discard."""

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: corrupted credentials cache file ({why}); delete it, or run with the option to "
            "discard corrupted credentials (the device is then registered again: 422 on a real Astarte)"
        )


def target_key(realm: str, pairing_url: str) -> str:
    """A filesystem-safe, stable key for one target (realm at a pairing host): readable slug + short hash.

    The port is left out: the embedded backend listens on a fresh ephemeral port at every start but keeps its
    device registry in its state dir, so its devices stay registered across restarts. A secret that the
    target rejects anyway (another backend on the same host) is dropped and the device registered again
    (pairing_client.onboard).
    """
    parts = urlsplit(pairing_url)
    where = f"{parts.scheme}://{parts.hostname or ''}{parts.path.rstrip('/')}"
    raw = f"{realm}@{where}"
    slug = _UNSAFE_CHARS.sub("_", f"{realm}_{parts.hostname or ''}").strip("_")[:40]
    return f"{slug}-{hashlib.sha256(raw.encode()).hexdigest()[:12]}"


def _mkdir_private(path: Path) -> None:
    """mkdir -p with mode 0700 on every directory we create (umask may not clear group/other bits)."""
    if path.is_dir():
        return
    _mkdir_private(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)


def _signature(path: str) -> tuple[int, int, int] | None:
    """What tells a rewritten file (write_private replaces it: a new inode) from the one parsed before."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CredentialsCache:
    """Credentials of many devices for one target. Safe for many greenlets; one writer per device id."""

    def __init__(self, root: Path | str, target_key: str, discard_corrupt: bool = False) -> None:
        if not _SAFE.match(target_key):
            # Anything unusual (a URL, a path) becomes a hash: never a path traversal.
            target_key = "t-" + hashlib.sha256(target_key.encode()).hexdigest()[:24]
        self.root = Path(root)
        self.base = self.root / target_key
        self.discard_corrupt = discard_corrupt
        # Parsed credentials by device, with the (inode, mtime_ns, size) of the three files they came from: a device
        # reconnecting after every reboot re-read and re-parsed its EC key and certificate each time (2% of
        # the generator's CPU, bench/campaign_capacity.py); now a changed file (any process) is read again.
        self._parsed: dict[str, tuple[tuple[tuple[int, int, int] | None, ...], DeviceCredentials]] = {}
        # The three files' paths by device, as strings: `get` runs on every reconnect, and building them with
        # pathlib (7 joins, 3 Path.stat) cost more than the three stat calls themselves (bench/reconnect_cost.py
        # `onboard_us`, see the commit that added this).
        self._files: dict[str, tuple[str, str, str]] = {}

    @classmethod
    def for_target(cls, credentials_dir: Path | str, realm: str, pairing_url: str,
                   discard_corrupt: bool = False) -> CredentialsCache:
        """THE cache of one target (both transports use this one). Devices found only in the former
        sdk-only cache (`<credentials_dir>/sdk/<target_key>/`) are moved in, so their secrets are not lost."""
        key = target_key(realm, pairing_url)
        cache = cls(credentials_dir, key, discard_corrupt)
        cache._adopt(Path(credentials_dir) / _LEGACY_SDK_DIR / cache.base.name)
        return cache

    def _adopt(self, legacy: Path) -> None:
        if not legacy.is_dir():
            return
        for old in sorted(legacy.iterdir()):
            new = self.base / old.name
            if _SAFE.match(old.name) and old.is_dir() and not new.exists():
                _mkdir_private(self.base)
                old.rename(new)
                _LOG.info("credentials of %s moved from %s to the shared cache %s", old.name, legacy, self.base)
        shutil.rmtree(legacy, ignore_errors=True)  # what is left there is shadowed by the shared cache

    def device_ids(self) -> list[str]:
        """Every device with a cached secret for this target, sorted."""
        if not self.base.is_dir():
            return []
        return sorted(p.name for p in self.base.iterdir()
                      if _SAFE.match(p.name) and (p / _SECRET_FILE).is_file())

    def device_dir(self, device_id: str) -> Path:
        """Per-device directory (created, 0700); also usable as the SDK's persistency_dir."""
        if not _SAFE.match(device_id):
            raise UsageError(f"invalid device id {device_id!r}: expected 22 base64url characters")
        path = self.base / device_id
        _mkdir_private(path)
        return path

    def crypto_dir(self, device_id: str) -> Path:
        """Where the SDK keeps device.key / device.crt under device_dir (device_mqtt.py `__init__`)."""
        path = self.device_dir(device_id) / device_id / "crypto"
        _mkdir_private(path)
        return path

    def key_path(self, device_id: str) -> Path:
        return self.crypto_dir(device_id) / "device.key"

    def cert_path(self, device_id: str) -> Path:
        return self.crypto_dir(device_id) / "device.crt"

    def get(self, device_id: str) -> DeviceCredentials | None:
        """The cached credentials, or None when the device was never registered through this cache.

        Raises CorruptCredentials naming the file when a file cannot be parsed (unless discard_corrupt: then
        the bad file is deleted, a warning logged, and the rest returned -- None when the secret was bad).
        """
        files = self._files.get(device_id)
        if files is None:
            files = self._files[device_id] = self._paths(device_id)
        signature = (_signature(files[0]), _signature(files[1]), _signature(files[2]))
        if signature[0] is None:
            return None
        known = self._parsed.get(device_id)
        if known is not None and known[0] == signature:
            return known[1]
        creds = self._read(device_id, Path(files[0]), Path(files[1]).parent)
        if creds is not None:
            self._parsed[device_id] = (signature, creds)
        return creds

    def _paths(self, device_id: str) -> tuple[str, str, str]:
        """credentials.json, device.key, device.crt of `device_id` (no mkdir: a read must not create)."""
        crypto = self.base / device_id / device_id / "crypto"
        return (str(self.base / device_id / _SECRET_FILE), str(crypto / "device.key"),
                str(crypto / "device.crt"))

    def _read(self, device_id: str, secret_file: Path, crypto: Path) -> DeviceCredentials | None:
        try:
            doc = json.loads(secret_file.read_bytes())
            if not isinstance(doc, dict) or not isinstance(doc.get("credentials_secret"), str):
                raise ValueError("no credentials_secret string")
            broker = doc.get("broker_url")
            if broker is not None and not isinstance(broker, str):
                raise ValueError("broker_url is not a string")
        except (ValueError, UnicodeDecodeError) as exc:
            self._corrupt(secret_file, str(exc))
            return None
        key_pem = self._read_pem(crypto / "device.key", is_key=True)
        cert_pem = self._read_pem(crypto / "device.crt", is_key=False)
        if key_pem is None or cert_pem is None:
            key_pem = cert_pem = None  # half a pair is useless: obtain both again
        return DeviceCredentials(doc["credentials_secret"], key_pem, cert_pem, broker)

    def _read_pem(self, path: Path, is_key: bool) -> bytes | None:
        if not path.exists():
            return None
        data = path.read_bytes()
        try:
            if is_key:
                serialization.load_pem_private_key(data, password=None)
            else:
                x509.load_pem_x509_certificate(data)
        except (ValueError, TypeError) as exc:
            self._corrupt(path, f"not a PEM {'private key' if is_key else 'certificate'}: {exc}")
            return None
        return data

    def _corrupt(self, path: Path, why: str) -> None:
        if not self.discard_corrupt:
            raise CorruptCredentials(path, why)
        _LOG.warning("discarding corrupted credentials cache file %s (%s)", path, why)
        path.unlink(missing_ok=True)

    def put(self, device_id: str, creds: DeviceCredentials) -> None:
        """Store (replace) a device's credentials; key/cert None leaves the files on disk untouched."""
        self._parsed.pop(device_id, None)
        doc = {"credentials_secret": creds.secret, "broker_url": creds.broker_url}
        write_private(self.device_dir(device_id) / _SECRET_FILE, json.dumps(doc).encode())
        if creds.key_pem is not None:
            write_private(self.key_path(device_id), creds.key_pem)
        if creds.cert_pem is not None:
            write_private(self.cert_path(device_id), creds.cert_pem)

    def forget(self, device_id: str) -> None:
        """Remove one device's credentials (e.g. after it was unregistered)."""
        self._parsed.pop(device_id, None)
        shutil.rmtree(self.base / device_id, ignore_errors=True)

    def clear(self) -> None:
        """Remove every device's credentials for this target."""
        shutil.rmtree(self.base, ignore_errors=True)
