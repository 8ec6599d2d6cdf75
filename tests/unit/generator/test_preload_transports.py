"""A Locust worker imports every transport before it connects to its master (fleet.preload_transports): an
import inside the `test_start` listener stopped both workers' gevent loops for seconds at once, and the master
stopped the test when they missed their heartbeats."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

from simulator.generator import fleet


def test_every_kind_the_factory_builds_has_its_modules_listed() -> None:
    source = inspect.getsource(fleet.make_transport_factory)
    kinds = set(re.findall(r'kind == "(\w+)"', source))
    assert kinds == set(fleet.TRANSPORT_MODULES)
    imported = set(re.findall(r"from (simulator\.[\w.]+) import", source))
    listed = {module for modules in fleet.TRANSPORT_MODULES.values() for module in modules}
    assert imported == listed


def test_preload_imports_them_in_a_fresh_interpreter() -> None:
    # A fresh process: this one has imported most of them already through other tests.
    listed = sorted({m for modules in fleet.TRANSPORT_MODULES.values() for m in modules})
    code = ("import sys\nfrom simulator.generator.fleet import preload_transports\n"
            f"before = [m for m in {listed!r} if m in sys.modules]\npreload_transports()\n"
            f"print(before, all(m in sys.modules for m in {listed!r}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["[]", "True"]  # none imported before, all after


def test_the_worker_preloads_before_it_connects() -> None:
    # Read, not imported: importing the worker module monkey-patches this test process (gevent.monkey).
    source = (Path(fleet.__file__).parent.parent / "locust_adapter" / "worker.py").read_text()
    body = source[source.index("def run_worker"):]
    assert body.index("preload_transports()") < body.index("create_worker_runner")
