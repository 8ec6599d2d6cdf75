"""Multi-host proof on one machine (issue 14): the backend, a master and two workers each in their own network
namespace with their own address (bench/multihost_netns.py builds it), against the single-process run of the
same seed: same plan digest, same planned and sent counts, the same sent event keys, 0 lost. Skipped without
root or iproute2; under CI=true (CI is root on this kind of machine) it must run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from bench.multihost_netns import ADDRESSES, BACKEND_PORTS, SUBNET, netns_unavailable, run_multihost
from tests.conftest import IN_CI


def test_master_two_workers_and_backend_in_their_own_namespaces_equal_one_process(tmp_path: Path) -> None:
    why = netns_unavailable()
    if why:
        if IN_CI:
            pytest.fail(f"CI=true and the multi-host proof cannot run: {why}")
        pytest.skip(why)
    tag = f"fst{abs(hash(tmp_path)) % 10000}"
    result = run_multihost(tmp_path, tag=tag)
    multi, single = result.multi, result.single
    assert multi["exit"] == 0 and single["exit"] == 0, result.logs
    backend = f"{SUBNET}.{ADDRESSES['backend']}"
    # The backend's own address and the fixed port it was given (fleetsim backend --host, --pairing-port).
    assert multi["target"] == f"https://{backend}:{BACKEND_PORTS['pairing']}/pairing", multi
    workers = multi["workers"]
    assert isinstance(workers, list) and len(workers) == 2, workers
    assert {w["plan_digest"] for w in workers} == {multi["plan_digest"]}  # both workers played the master's plan
    assert multi["plan_digest"] == single["plan_digest"]
    assert (multi["planned"], multi["sent"]) == (single["planned"], single["sent"]) and int(multi["sent"]) > 0
    assert multi["lost"] == single["lost"] == 0 and multi["delivered"] == multi["acked"] == multi["sent"]
    assert result.same_sent_keys and result.sent_keys == multi["sent"]
    for run in (multi, single):
        join = run["join"]
        assert isinstance(join, dict) and join["impossible"] == 0 and join["pairs"] == run["delivered"]
    assert result.equal
    # The workers could not see the backend's folder: they verified the broker with the CA the master shipped.
    assert list((tmp_path / "gen" / "worker-ca").glob("*.pem")), "the workers did not use the shipped CA"
    # Nothing is left behind: no namespace of this run remains.
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    assert tag not in listed, listed
