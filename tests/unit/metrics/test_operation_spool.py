"""Issue 14: answered OTA operations folded on disk and tallied as they come give the report a list gave."""

from __future__ import annotations

import random
from pathlib import Path

from simulator.download import DownloadOutcome
from simulator.metrics.campaign import (
    OperationRecord,
    ResponderLog,
    campaign_report,
    fold_operations,
)
from simulator.metrics.convergence import BackendOperation
from simulator.metrics.operation_spool import OperationSpool, record_from_row, record_to_row
from simulator.metrics.quantile_tally import QuantileTally


def _fleet(devices: int, ops_per_device: int, seed: int = 7) -> tuple[list[OperationRecord], list[OperationRecord]]:
    """(pieces as a process ships them: closed ones mid-run, then the rest at the end; the operations whole)."""
    rng = random.Random(seed)
    pieces: list[OperationRecord] = []
    whole: list[OperationRecord] = []
    for d in range(devices):
        log, ref = ResponderLog(f"dev-{d}"), ResponderLog(f"dev-{d}")
        at = 1_000.0 + d
        for k in range(ops_per_device):
            uuid = f"u{d}-{k}"
            ack_s, final_s = rng.uniform(0.001, 0.2), rng.uniform(1.0, 9.0)
            for target in (log, ref):
                target.request("Update", uuid, at)
                target.acked(uuid, "Acknowledged", at + ack_s)
                if k % 3 == 0:
                    target.download(uuid, DownloadOutcome(status=200, received=1000, total=1000, seconds=0.5), at + 1)
                status, code = ("Failure", "InvalidBaseImage") if k % 5 == 4 else ("Success", "")
                target.published(uuid, status, code, at + final_s)
                target.acked(uuid, status, at + 10.0)
            pieces.extend(log.take_closed())
            if k % 4 == 1:  # the backend re-sends the uuid after its final: the idle device runs it again, a
                for target in (log, ref):  # second piece, shipped once its own final is acked
                    target.request("Update", uuid, at + 11.0)
                    target.published(uuid, "Success", "", at + 12.0)
                    target.acked(uuid, "Success", at + 12.5)
                pieces.extend(log.take_closed())
            at += rng.uniform(13.0, 20.0)
        log.request("Update", f"u{d}-open", at)  # still open at the end: shipped with the final export
        ref.request("Update", f"u{d}-open", at)
        pieces.extend(log.records())
        whole.extend(ref.records())
    return pieces, whole


def test_spooled_operations_give_the_report_the_list_gave(tmp_path: Path) -> None:
    pieces, whole = _fleet(devices=5, ops_per_device=30)
    folded: dict[tuple[str, str], OperationRecord] = {}
    fold_operations(folded, pieces)
    backend = [BackendOperation(r.device, r.uuid, "SUCCESS" if r.last_status == "Success" else "DOWNLOADING")
               for r in whole[::2]] + [BackendOperation("dev-x", "never", "PENDING")]
    spool = OperationSpool(tmp_path / "spool", hold=2)
    for start in range(0, len(pieces), 17):  # as periodic reports bring them
        spool.add(pieces[start:start + 17])
    spool.close()
    assert sorted(spool, key=lambda r: (r.device, r.uuid)) == sorted(whole, key=lambda r: (r.device, r.uuid))
    assert spool.written == len(whole) and spool.path.exists()
    for backend_view in (None, backend):
        listed = campaign_report(list(folded.values()), end=1_500.0, driver="edgehog", max_in_progress=3,
                                 backend=backend_view)
        spooled = campaign_report(spool, end=1_500.0, driver="edgehog", max_in_progress=3, backend=backend_view,
                                  tally=spool.tally)
        assert spooled.to_json() == listed.to_json()
    assert listed.retries_seen > 0 and listed.downloads is not None and listed.convergence is not None
    assert listed.convergence.diverged_count > 0 and listed.convergence.never_reached == 1
    spool.discard()
    assert not spool.path.exists() and not spool.path.parent.exists()


def test_memory_holds_a_few_operations_per_device_whatever_the_count(tmp_path: Path) -> None:
    pieces, whole = _fleet(devices=4, ops_per_device=60)
    spool = OperationSpool(tmp_path, hold=4)
    spool.add(pieces)
    assert sum(len(ops) for ops in spool.held.values()) <= 4 * 4
    assert spool.written == len(whole) - sum(len(ops) for ops in spool.held.values())
    spool.close()
    assert spool.held == {} and spool.tally.operations == len(whole) == 4 * 61


def test_a_row_reads_back_as_the_record_it_was() -> None:
    log = ResponderLog("dev,with \"quotes\"")
    log.request("Update", "u1", 1_700_000_000.123456789)
    refused = DownloadOutcome(status=0, received=0, total=0, seconds=0.1, error="connect: refused, twice")
    log.download("u1", refused, 1_700_000_001.5)
    log.download("u1", DownloadOutcome(status=200, received=4096, total=4096, seconds=0.25), 1_700_000_002.0)
    log.published("u1", "Failure", "Canceled", 1_700_000_003.1)
    log.request("Cancel", "u2", 1_700_000_004.0)  # no ack, no final: the Nones must survive
    for record in log.records():
        assert record_from_row(record_to_row(record)) == record


def test_quantile_tally_is_exact_then_within_the_histograms_resolution() -> None:
    rng = random.Random(3)
    values = [rng.uniform(0.0005, 30.0) for _ in range(2_500)]
    small, large = QuantileTally(exact_max=5_000), QuantileTally(exact_max=1_000)
    for v in values:
        small.add(v)
        large.add(v)
    ordered = sorted(values)
    assert small.exact and small.rank(50) == ordered[1_249] and small.rank(99) == ordered[2_474]
    assert not large.exact and (large.count, large.min, large.max) == (2_500, ordered[0], ordered[-1])
    for p, i in ((50, 1_249), (90, 2_249), (99, 2_474)):
        got = large.rank(p)
        assert got is not None and abs(got - ordered[i]) <= ordered[i] * 1e-3 + 1e-6
    assert QuantileTally().rank(50) is None
