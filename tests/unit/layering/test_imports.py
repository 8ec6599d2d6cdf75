"""The layering of simulator/, read from its source with ast (every import, function-level ones included).

- no import cycle among simulator's modules;
- the core (scenario, lifecycle, arrival, plan, metrics, events, records, clock) imports only the core and the
  small shared leaves (errors, ids, config): never an adapter (transports, backend, generator, Locust, ...);
- only simulator.locust_adapter imports locust;
- only simulator.transports and simulator.backend import paho, amqtt or astarte (the SDK) -- plus
  simulator.interfaces, whose loader parses the bundled interfaces with the SDK's own `Interface` model so that
  devices and the backend validate with the same rules;
- the embedded backend is its own app: outside simulator.backend only the composition root (simulator.commands)
  imports it; the generator starts it as a process (simulator.generator.backend_process) and reads its
  BackendInfo (simulator.backend_info).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import simulator

ROOT = Path(simulator.__file__).resolve().parent
# simulator.download is the download seam (a Protocol and its outcome record, no I/O): core like records.py.
# plan_steps and plan_cursor are the lazy plan's seams and its pure cursor (no clock, no I/O).
CORE = ("simulator.scenario", "simulator.lifecycle", "simulator.arrival", "simulator.plan", "simulator.plan_steps",
        "simulator.plan_cursor", "simulator.metrics", "simulator.events", "simulator.records", "simulator.clock",
        "simulator.download")
# simulator.slot_setters: a dataclass helper of the core's hot constructors (events.py), no first-party import.
SHARED_LEAVES = ("simulator.errors", "simulator.ids", "simulator.config", "simulator.slot_setters")
SDK_TOP = ("paho", "amqtt", "astarte")
SDK_ALLOWED = ("simulator.transports", "simulator.backend", "simulator.interfaces")


def _in(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


@cache
def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("simulator", *path.relative_to(ROOT).with_suffix("").parts))
        out[name.removesuffix(".__init__")] = path
    return out


@cache
def _imports(module: str) -> frozenset[str]:
    """Every absolute module name `module` imports (`from a import b` is a.b when that is a module, else a)."""
    mods = _modules()
    found: set[str] = set()
    for node in ast.walk(ast.parse(mods[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in mods else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return frozenset(found)


def _first_party(module: str) -> set[str]:
    """simulator modules `module` imports (the longest existing prefix of each name)."""
    mods = _modules()
    out: set[str] = set()
    for name in _imports(module):
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name.startswith("simulator") and name != module and name != "simulator":
            out.add(name)
    return out


def test_walks_the_whole_package() -> None:
    mods = _modules()
    assert len(mods) > 100 and "simulator.cli" in mods and "simulator.transports.lean" in mods


def _find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(m: str, stack: list[str]) -> None:
        if m in stack:
            cycles.append([*stack[stack.index(m):], m])
            return
        if m in done:
            return
        stack.append(m)
        for dep in sorted(graph.get(m, ())):
            visit(dep, stack)
        stack.pop()
        done.add(m)

    for m in sorted(graph):
        visit(m, [])
    return cycles


def test_the_cycle_finder_sees_a_cycle() -> None:
    # The check below must be able to fail: a made-up graph with one cycle through three modules.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycles(graph) == [["a", "b", "c", "a"]]


def test_no_import_cycle() -> None:
    assert _find_cycles({m: _first_party(m) for m in _modules()}) == []


def test_core_never_imports_adapters() -> None:
    bad = {m: sorted(d for d in _first_party(m) if not _in(d, CORE + SHARED_LEAVES))
           for m in _modules() if _in(m, CORE)}
    assert {m: deps for m, deps in bad.items() if deps} == {}


def test_only_locust_adapter_imports_locust() -> None:
    users = sorted(m for m in _modules() if any(i.split(".")[0] == "locust" for i in _imports(m)))
    assert users and all(_in(m, ("simulator.locust_adapter",)) for m in users), users


def test_only_transports_and_backend_import_mqtt_and_the_sdk() -> None:
    users = sorted(m for m in _modules() if any(i.split(".")[0] in SDK_TOP for i in _imports(m)))
    assert users, "paho and the SDK are used somewhere"
    assert [m for m in users if not _in(m, SDK_ALLOWED)] == []


def test_backend_is_its_own_app() -> None:
    importers = sorted(m for m in _modules() if not _in(m, ("simulator.backend",))
                       and any(_in(d, ("simulator.backend",)) for d in _first_party(m)))
    assert importers == ["simulator.commands.backend"]
