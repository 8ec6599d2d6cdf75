"""A stopped collector must not stop the broker: devices' QoS 2 publishes keep completing while the embedded
backend's Python process (Pairing API, collector, the log reader) is SIGSTOPped, and nothing is lost after it
resumes.

mosquitto logs ~400-700 bytes per QoS 2 OTAEvent at debug level (the backend's default, for counting ACL
denials) to a 1 MiB pipe. When that pipe was drained by a thread of the backend's process, a stopped backend
filled it within a few thousand events and mosquitto blocked in write(2) on its stderr: every device's PUBREC
and PUBCOMP waited for the backend to run again. The log relay (simulator.backend.log_relay) drains it from
a process of its own. Here a real `python -m simulator.backend` (what `fleetsim run` starts for `target:
embedded`), devices paired over its Pairing API, and paho clients over mutual TLS publish OTAEvents at RATE/s;
the backend process (not mosquitto, not the relay) is stopped for STOP_S, several pipes' worth of log.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from simulator.backend_info import BackendInfo
from simulator.generator.backend_process import BackendProcess
from simulator.observers.embedded import CollectorClient
from simulator.transports.pairing_client import PairingClient, generate_key
from tests.integration.backend.test_collector import ota_payload
from tests.integration.backend.tls_helpers import MqttClient, device_id, write_device_cert

pytestmark = pytest.mark.integration
OTA = "io.edgehog.devicemanager.OTAEvent"
DEVICES = 20
RATE = 800.0  # OTAEvents/s offered over all devices: 4,800 in the stop, ~2 MB of debug log, 2x the pipe
BEFORE_S = 1.0  # publishing before the stop (the steady state), ...
STOP_S = 6.0  # ... while the backend is stopped, ...
AFTER_S = 1.0  # ... and after it resumes
# The acknowledgement of an event published in the stop up to ACK_BOUND_S before its end must come before the
# end. With the broker blocked on its log the acks stop within ~2-3 s of the stop (a pipe's worth of events)
# and resume only at SIGCONT: those acks would wait the rest of the stop, up to STOP_S. A running broker acks
# in milliseconds; 1 s leaves room for a loaded machine and is far from both.
ACK_BOUND_S = 1.0
DRAIN_S = 60.0  # after SIGCONT, the collector has this long to take the stop's backlog (4,800 events)


class Device:
    """A paired device's paho client; send and ack times of its QoS 2 publishes, by message id."""

    def __init__(self, info: BackendInfo, pairing: PairingClient, tmp_path: Path) -> None:
        self.id = device_id()
        secret = pairing.register(self.id, info.agent_jwt)
        key = generate_key()
        cert, keyf = write_device_cert(tmp_path, self.id, key, pairing.obtain_certificate(self.id, secret, key))
        self.mqtt = MqttClient(Path(info.ca_file), cert, keyf, f"{info.realm}/{self.id}")
        self.mqtt.client.max_inflight_messages_set(1000)  # the schedule paces the publishes, not paho's window
        self.mqtt.client.on_publish = self._acked
        self.topic = f"{info.realm}/{self.id}/{OTA}/event"
        self.sent: dict[int, float] = {}
        self.acked: dict[int, float] = {}
        self._lock = threading.Lock()

    def _acked(self, _c: object, _u: object, mid: int, *_a: object) -> None:
        now = time.monotonic()
        with self._lock:
            self.acked[mid] = now

    def publish(self, payload: bytes) -> None:
        now = time.monotonic()
        info = self.mqtt.client.publish(self.topic, payload, qos=2)
        with self._lock:
            self.sent[info.mid] = now

    def acks(self) -> list[tuple[float, float | None]]:
        """(sent, acked or None) per publish."""
        with self._lock:
            return [(t, self.acked.get(mid)) for mid, t in self.sent.items()]


@pytest.fixture
def backend(tmp_path: Path, mosquitto_binary: str) -> Iterator[BackendProcess]:
    proc = BackendProcess(tmp_path / "state", broker="mosquitto")
    proc.start()
    yield proc
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGCONT)  # never leave it stopped, whatever failed
    proc.stop()


def _log_bytes(state: Path) -> int:
    return sum(f.stat().st_size for f in (state / "mosquitto").glob("mosquitto.log*"))


def test_devices_acks_go_on_while_the_backend_is_stopped_and_nothing_is_lost(backend: BackendProcess,
                                                                              tmp_path: Path) -> None:
    info, pid = backend.info, backend.pid
    assert info is not None and pid is not None and info.broker_kind == "mosquitto"
    pairing = PairingClient(info.pairing_url, info.realm, info.ca_file)
    devices = [Device(info, pairing, tmp_path) for _ in range(DEVICES)]
    pairing.close()
    collector = CollectorClient(info.control_url)
    collector.start()
    for dev in devices:
        assert dev.mqtt.start(info.broker_port)
        dev.mqtt.client.publish(f"{info.realm}/{dev.id}", f"{OTA}:1:0".encode(), qos=2)  # introspection
    payload = ota_payload("Downloading")
    backend_proc = psutil.Process(pid)
    total = round((BEFORE_S + STOP_S + AFTER_S) * RATE)
    stop_at, cont_at = BEFORE_S, BEFORE_S + STOP_S
    stopped = resumed = 0.0
    log_at_stop = log_at_cont = 0
    start = time.monotonic()
    try:
        for k in range(total):
            due = start + k / RATE
            if not stopped and due >= start + stop_at:
                log_at_stop = _log_bytes(Path(info.state_dir))
                os.kill(pid, signal.SIGSTOP)
                stopped = time.monotonic()
            if stopped and not resumed and due >= start + cont_at:
                assert backend_proc.status() == psutil.STATUS_STOPPED
                log_at_cont = _log_bytes(Path(info.state_dir))
                resumed = time.monotonic()  # what was acked by now was acked while the backend was stopped
                os.kill(pid, signal.SIGCONT)
            if (left := due - time.monotonic()) > 0:
                time.sleep(left)  # sleep-ok: the publishers' pacing (an absolute schedule), not a wait for logic
            devices[k % DEVICES].publish(payload)
    finally:
        os.kill(pid, signal.SIGCONT)
    in_stop = [(t, a) for dev in devices for t, a in dev.acks() if stopped <= t <= resumed - ACK_BOUND_S]
    waits = sorted((a if a is not None else float("inf")) - t for t, a in in_stop) or [float("nan")]
    print(f"\nstall: {len(in_stop)} publishes in the stop ({resumed - stopped:.1f} s), slowest ack "
          f"{waits[-1] * 1000:.0f} ms, {sum(w >= ACK_BOUND_S for w in waits)} acked {ACK_BOUND_S:g} s or more "
          f"after its publish; mosquitto.log grew {log_at_cont - log_at_stop:,} bytes in it")
    late = [a for t, a in in_stop if a is None or a >= resumed]
    assert in_stop and not late, (
        f"{len(late)} of {len(in_stop)} publishes made while the backend was stopped were not acknowledged "
        f"before it resumed (slowest ack {waits[-1]:.2f} s after its publish, stop {resumed - stopped:.1f} s)")
    # The stop held more log than a pipe (1 MiB): the relay wrote it to disk meanwhile.
    assert log_at_cont - log_at_stop > 1 << 20, (log_at_stop, log_at_cont)
    # After SIGCONT: every publish acknowledged, and every event reaches the collector.
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline and (collector.arrival_count() < total
                                           or any(a is None for d in devices for _, a in d.acks())):
        time.sleep(0.2)  # sleep-ok: polling another process's count, bounded by the deadline
    arrived = collector.arrival_count()
    print(f"stall: {arrived} of {total} events at the collector {time.monotonic() - resumed:.1f} s after SIGCONT")
    assert sum(a is not None for d in devices for _, a in d.acks()) == total
    assert arrived == total
    for dev in devices:
        dev.mqtt.stop()
