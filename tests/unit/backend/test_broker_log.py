"""The log relay process (simulator.backend.log_relay) on real OS pipes, read by BrokerLogReader as the backend
does: refusals counted across chunk boundaries, examples capped, disk capped, and a backend that does not read
never stops the draining nor loses a count."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.backend import log_relay
from simulator.backend.broker_log import EXAMPLES_KEPT, BrokerLogReader

DENIED = b"1: Denied PUBLISH from x (d0, q1, r0, m1, 'fleetsim/other/t', ... (6 bytes))\n"
CHATTER = b"1: Received PUBLISH from auto-1 (d0, q2, r0, m4, 'fleetsim/dev/io.x/event', ... (153 bytes))\n"


class Relay:
    """A relay process fed by `write()`; `reader()` starts the backend's side (later, to play a stopped one)."""

    def __init__(self, path: Path, cap: int) -> None:
        r, self._w = os.pipe()
        self.path = path
        self.proc = subprocess.Popen(log_relay.command(path, cap), stdin=r, stdout=subprocess.PIPE)
        os.close(r)
        self._reader: BrokerLogReader | None = None

    def reader(self) -> BrokerLogReader:
        if self._reader is None:
            assert self.proc.stdout is not None
            self._reader = BrokerLogReader(self.proc.stdout, self.path)
        return self._reader

    def write(self, data: bytes) -> None:
        os.write(self._w, data)

    def eof(self) -> BrokerLogReader:
        """mosquitto exited: the relay reads to EOF, sends its last messages and exits 0."""
        os.close(self._w)
        self._w = -1
        reader = self.reader()
        reader.join(30)
        assert self.proc.wait(30) == 0
        return reader

    def close(self) -> None:
        if self._w >= 0:
            os.close(self._w)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[Relay]]:
    made: list[Relay] = []
    yield made
    for relay in made:
        relay.close()


def _relay(relays: list[Relay], tmp_path: Path, cap: int = 1 << 20) -> Relay:
    relays.append(Relay(tmp_path / "mosquitto.log", cap))
    return relays[-1]


def test_counts_refusals_split_across_writes_and_keeps_everything_on_disk(relays: list[Relay],
                                                                          tmp_path: Path) -> None:
    relay = _relay(relays, tmp_path)
    reader = relay.reader()
    relay.write(CHATTER * 100 + DENIED[:20])  # a refusal line cut in two by the pipe
    relay.write(DENIED[20:] + CHATTER)
    relay.write(b"2: OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a certificate\n")
    assert reader.wait_for("acl_publish", 1, 10.0)
    assert reader.wait_for("no_client_cert", 1, 10.0)
    relay.eof()
    assert reader.refusals() == {"acl_publish": 1, "no_client_cert": 1}
    assert reader.examples()[0] == DENIED.decode().rstrip("\n")
    assert (tmp_path / "mosquitto.log").read_bytes().count(b"\n") == 103
    assert reader.bytes_read == (tmp_path / "mosquitto.log").stat().st_size
    assert reader.disk_error is None


def test_a_last_line_without_newline_is_counted_at_eof(relays: list[Relay], tmp_path: Path) -> None:
    relay = _relay(relays, tmp_path)
    relay.write(DENIED.rstrip(b"\n"))
    assert relay.eof().refusals() == {"acl_publish": 1}


def test_disk_log_is_capped_by_rotation_and_examples_by_count(relays: list[Relay], tmp_path: Path) -> None:
    cap = 4096
    relay = _relay(relays, tmp_path, cap=cap)
    for _ in range(EXAMPLES_KEPT + 30):
        relay.write(CHATTER * 20 + DENIED)
    reader = relay.eof()
    assert reader.refusals() == {"acl_publish": EXAMPLES_KEPT + 30}  # every one counted ...
    assert len(reader.examples()) == EXAMPLES_KEPT  # ... the newest kept as examples
    files = sorted(tmp_path.glob("mosquitto.log*"))
    assert [f.name for f in files] == ["mosquitto.log", "mosquitto.log.1"]
    assert all(f.stat().st_size <= cap for f in files)
    assert reader.bytes_read == (EXAMPLES_KEPT + 30) * (len(CHATTER) * 20 + len(DENIED))
    assert reader.tail(1) == DENIED.decode().rstrip("\n")


def test_a_failing_disk_copy_does_not_stop_the_draining_or_the_counting(relays: list[Relay],
                                                                         tmp_path: Path) -> None:
    (tmp_path / "mosquitto.log.1").mkdir()  # the rotation target cannot be replaced: the copy fails at the cap
    relay = _relay(relays, tmp_path, cap=256)
    for _ in range(20):
        relay.write(CHATTER * 5 + DENIED)
    reader = relay.eof()
    assert reader.disk_error is not None and "IsADirectoryError" in reader.disk_error
    assert reader.refusals() == {"acl_publish": 20}


def test_a_backend_that_does_not_read_never_blocks_the_relay_nor_loses_a_count(relays: list[Relay],
                                                                              tmp_path: Path) -> None:
    # The backend stopped (SIGSTOP, starved): nobody reads the relay's stdout. Each refusal is a message of
    # ~90 bytes, so 5,000 of them are ~7x what the relay's stdout pipe holds (64 KiB): a relay that waited on
    # that pipe would stop draining, and this writer (mosquitto) would block on its 1 MiB of input.
    relay = _relay(relays, tmp_path, cap=64 << 20)
    refusals = 5000
    lines = [CHATTER * 3 + DENIED.replace(b"m1,", f"m{i},".encode()) for i in range(refusals)]
    writer = threading.Thread(target=lambda: [relay.write(b) for b in lines], daemon=True)
    writer.start()
    writer.join(60)  # a deadlock guard, not a timing assert: the write returns once the relay has read it all
    assert not writer.is_alive(), "the relay stopped draining while its output was not read"
    reader = relay.eof()  # now the backend reads again: the running count is exact, the examples the newest
    assert reader.refusals() == {"acl_publish": refusals}
    assert len(reader.examples()) == EXAMPLES_KEPT
    assert f"m{refusals - 1}," in reader.examples()[-1]
    assert reader.bytes_read == sum(len(b) for b in lines)
