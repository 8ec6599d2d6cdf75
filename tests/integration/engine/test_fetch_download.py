"""`download: fetch`: devices GET the OTARequest's url from the embedded image server, progress from real bytes.

The downloader alone against the image server (header, streaming, the runtime's error cases), then a whole
campaign whose image server cuts a share of the responses off mid-body (retried like the runtime retries).
"""

from __future__ import annotations

import csv
import json
import urllib.request
import uuid
from pathlib import Path

import pytest

from simulator.backend.images import ImageServer
from simulator.transports.http_download import HttpDownloader
from tests.integration.engine.conftest import only_run_dir, run_scenario_text, summary_of

pytestmark = pytest.mark.integration

SIZE = 512 * 1024


@pytest.fixture
def images() -> ImageServer:
    server = ImageServer()
    server.start()
    yield server  # type: ignore[misc]
    server.stop()


def test_downloader_streams_with_the_ota_id_header(images: ImageServer) -> None:
    ota_id = str(uuid.uuid4())
    progress: list[tuple[int, int]] = []
    outcome = HttpDownloader().fetch(f"{images.url}/os.raucb?size=512KiB&rate=4MiB", ota_id,
                                     lambda received, total: progress.append((received, total)))
    assert outcome.ok and (outcome.status, outcome.received, outcome.total) == (200, SIZE, SIZE)
    assert [r for r, _ in progress] == sorted({r for r, _ in progress}) and progress[-1] == (SIZE, SIZE)
    assert len(progress) >= SIZE // (64 * 1024)  # read in bounded chunks, never the body at once
    stats = json.loads(urllib.request.urlopen(f"{images.url}/stats", timeout=10).read())
    assert stats["by_ota_id"] == {ota_id: 1} and stats["bytes_sent"] == SIZE


@pytest.mark.parametrize(("query", "error", "status"), [
    ("size=64KiB&chunked=1", "no_content_length", 200),  # the runtime needs a Content-Length
    ("size=256KiB&fail=1", "short_read", 200),  # cut off mid-body
    ("size=64KiB&status=503", "", 503),  # "downloaded" (the runtime ignores the status); the bundle check fails
])
def test_downloader_failures_as_the_runtime_sees_them(images: ImageServer, query: str, error: str,
                                                      status: int) -> None:
    outcome = HttpDownloader().fetch(f"{images.url}/os.raucb?{query}", str(uuid.uuid4()), lambda r, t: None)
    assert (outcome.error.split(":")[0], outcome.status) == (error, status), outcome


def test_refused_connection_is_a_network_error() -> None:
    server = ImageServer()
    url = server.url
    server.stop()  # nothing listens there any more
    outcome = HttpDownloader().fetch(f"{url}/os.raucb", str(uuid.uuid4()), lambda r, t: None)
    assert outcome.error.startswith("connect: ") and outcome.status == 0


CAMPAIGN = """\
name: fetch
seed: 3
fleet: {devices: 6, target_version: 1.1.0}
time_scale: 600
duration: 30s
mode: campaign
campaign: {max_in_progress: 3, request_timeout: 5m, request_retries: 3, max_failure_percentage: 100,
           url: "{images}/os.raucb?size=512KiB&rate=4MiB&fail=0.3&seed=4"}
lifecycle:
  random:
    outcomes: {success: 1.0}
    download: fetch
    deploy_duration: 60s
    reboot_duration: 60s
"""


def test_campaign_downloads_real_bytes_and_retries_cut_offs(tmp_path: Path) -> None:
    proc, results = run_scenario_text(tmp_path, "fetch", CAMPAIGN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = only_run_dir(results)
    metrics = summary_of(run_dir)["extra"]["campaign_metrics"]  # type: ignore[index]
    assert metrics["answered"] == 6 and metrics["convergence"]["converged"] == 6
    downloads = metrics["downloads"]
    assert downloads["completed"] == 6 and downloads["bytes"] == 6 * SIZE
    assert downloads["failed_attempts"] >= 1 and set(downloads["errors"]) <= {"short_read", "read"}
    assert downloads["attempts"] == 6 + downloads["failed_attempts"]
    assert 0 < downloads["per_download_mbps_p50"] <= 4 * 1.048576  # the server throttles at 4 MiB/s
    with (run_dir / "events.sent.csv").open() as f:
        rows = list(csv.DictReader(f))
    errors = [r for r in rows if r["status"] == "Error"]
    assert len(errors) == downloads["failed_attempts"] and {r["code"] for r in errors} == {"NetworkError"}
    progress = {int(r["progress"]) for r in rows if r["status"] == "Downloading"}
    assert 12 in progress and 87 in progress  # 64 KiB reads of a 512 KiB body: 12.5 % steps, not 10s
    assert sum(1 for r in rows if r["status"] == "Success") == 6
