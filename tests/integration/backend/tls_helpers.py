"""Helpers for the embedded-backend integration tests: device keys/CSRs and paho clients over mutual TLS."""

from __future__ import annotations

import base64
import os
import queue
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["MqttClient", "device_id", "make_csr", "write_device_cert"]


def device_id() -> str:
    """A random Astarte device id: 128 bits, unpadded base64url, 22 characters (docs/protocol.md section 1)."""
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def make_csr(cn: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """An EC P-256 key and a CSR with `O=Devices, CN=cn`, like astarte/device/crypto.py makes."""
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
    return key, csr.public_bytes(serialization.Encoding.PEM)


def write_device_cert(
    directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert_pem: bytes
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class MqttClient:
    """A paho client (its own loop thread) whose events are waited on with timeouts, never sleeps."""

    def __init__(self, ca_file: Path, cert_file: Path | None, key_file: Path | None, client_id: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.client.tls_set(
            ca_certs=str(ca_file),
            certfile=str(cert_file) if cert_file else None,
            keyfile=str(key_file) if key_file else None,
        )
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connect_rc: object = None
        self.messages: queue.Queue[tuple[str, bytes, int]] = queue.Queue()
        self.subscribed = threading.Event()
        self.published: queue.Queue[int] = queue.Queue()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def _on_connect(self, _c: object, _u: object, _f: object, rc: object, _p: object = None) -> None:
        self.connect_rc = rc
        self.connected.set()

    def _on_disconnect(self, *_a: object) -> None:
        self.disconnected.set()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        self.messages.put((msg.topic, msg.payload, msg.qos))

    def _on_subscribe(self, *_a: object) -> None:
        self.subscribed.set()

    def _on_publish(self, _c: object, _u: object, mid: int, *_a: object) -> None:
        self.published.put(mid)

    def start(self, port: int, timeout: float = 5.0) -> bool:
        """Connect; True when CONNACK accepted within timeout, False when refused / dropped."""
        try:
            self.client.connect("127.0.0.1", port, keepalive=30)
        except OSError:
            return False
        self.client.loop_start()
        deadline = time.monotonic() + timeout
        # Bounded waits on events, not a sleep: CONNACK sets `connected`, a TLS refusal `disconnected`.
        while time.monotonic() < deadline and not self.disconnected.is_set():
            if self.connected.wait(0.05):
                break
        return self.connected.is_set() and not getattr(self.connect_rc, "is_failure", False)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
