"""BrokerLogReader on a real OS pipe: refusals counted across chunk boundaries, examples capped, disk capped."""

from __future__ import annotations

import os
from pathlib import Path

from simulator.backend.broker_log import EXAMPLES_KEPT, BrokerLogReader

DENIED = b"1: Denied PUBLISH from x (d0, q1, r0, m1, 'fleetsim/other/t', ... (6 bytes))\n"
CHATTER = b"1: Received PUBLISH from auto-1 (d0, q2, r0, m4, 'fleetsim/dev/io.x/event', ... (153 bytes))\n"


def _reader(tmp_path: Path, cap: int = 1 << 20) -> tuple[BrokerLogReader, int]:
    r, w = os.pipe()
    return BrokerLogReader(os.fdopen(r, "rb", buffering=0), tmp_path / "mosquitto.log", cap_bytes=cap), w


def test_counts_refusals_split_across_writes_and_keeps_everything_on_disk(tmp_path: Path) -> None:
    reader, w = _reader(tmp_path)
    os.write(w, CHATTER * 100 + DENIED[:20])  # a refusal line cut in two by the pipe
    os.write(w, DENIED[20:] + CHATTER)
    os.write(w, b"2: OpenSSL Error[0]: error:0A0000C7:SSL routines::peer did not return a certificate\n")
    assert reader.wait_for("acl_publish", 1, 5.0)
    assert reader.wait_for("no_client_cert", 1, 5.0)
    os.close(w)
    reader.join()
    assert reader.refusals() == {"acl_publish": 1, "no_client_cert": 1}
    assert reader.examples()[0] == DENIED.decode().rstrip("\n")
    assert (tmp_path / "mosquitto.log").read_bytes().count(b"\n") == 103
    assert reader.bytes_read == (tmp_path / "mosquitto.log").stat().st_size


def test_a_last_line_without_newline_is_counted_at_eof(tmp_path: Path) -> None:
    reader, w = _reader(tmp_path)
    os.write(w, DENIED.rstrip(b"\n"))
    os.close(w)
    reader.join()
    assert reader.refusals() == {"acl_publish": 1}


def test_disk_log_is_capped_by_rotation_and_examples_by_count(tmp_path: Path) -> None:
    cap = 4096
    reader, w = _reader(tmp_path, cap=cap)
    for _ in range(EXAMPLES_KEPT + 30):
        os.write(w, CHATTER * 20 + DENIED)
    os.close(w)
    reader.join()
    assert reader.refusals() == {"acl_publish": EXAMPLES_KEPT + 30}  # every one counted ...
    assert len(reader.examples()) == EXAMPLES_KEPT  # ... the newest kept as examples
    files = sorted(tmp_path.glob("mosquitto.log*"))
    assert [f.name for f in files] == ["mosquitto.log", "mosquitto.log.1"]
    assert all(f.stat().st_size <= cap for f in files)
    assert reader.bytes_read == (EXAMPLES_KEPT + 30) * (len(CHATTER) * 20 + len(DENIED))
    assert reader.tail(1) == DENIED.decode().rstrip("\n")


def test_a_failing_disk_copy_does_not_stop_the_draining_or_the_counting(tmp_path: Path) -> None:
    (tmp_path / "mosquitto.log.1").mkdir()  # the rotation target cannot be replaced: the copy fails at the cap
    reader, w = _reader(tmp_path, cap=256)
    for _ in range(20):
        os.write(w, CHATTER * 5 + DENIED)
    os.close(w)
    reader.join()
    assert reader.disk_error is not None
    assert reader.refusals() == {"acl_publish": 20}
