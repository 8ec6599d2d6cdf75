"""Whatever the input, the loader returns a Scenario or raises ConfigErrors: never any other exception."""

from __future__ import annotations

import copy
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.errors import ConfigErrors
from simulator.scenario.loader import TOP_KEYS, load_scenario_text
from simulator.scenario.model import Scenario

KEYS = [*TOP_KEYS, "model", "rate", "count", "stages", "random", "scripted", "mix", "outcomes", "steps",
        "status", "weight", "devices", "kind", "lognormal", "uniform", "median", "sigma", "x-a", "<<"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["30s", "5m", "250ms", "1h", "-1s", "1e999", "< 50", "== 0", "Acknowledged", "success",
                     "constant", "ramping", "burst", "poisson", "NetworkError", "2026-11-01T00:00:00Z",
                     ".nan"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children, max_size=5),
    ),
    max_leaves=25,
)


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _dump(doc: Any) -> str:
    return yaml.dump(doc, Dumper=_DUMPER, allow_unicode=True)


def _outcome(text: str) -> None:
    try:
        result = load_scenario_text(text, "fuzz.yaml")
    except ConfigErrors as exc:
        assert exc.errors and all(e.file == "fuzz.yaml" and e.line >= 0 for e in exc.errors)
    else:
        assert isinstance(result, Scenario)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_structures(doc: Any) -> None:
    _outcome(_dump(doc))


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc: -[]{}&*!|>'\"#\n\t012.,?%@`<=~")), max_size=80))
def test_random_text(text: str) -> None:
    _outcome(text)


VALID: dict[str, Any] = {
    "name": "base", "seed": 1, "fleet": {"devices": 5, "base_image": {"version": "1.0.0"}},
    "duration": "30s",
    "arrival": {"model": "ramping", "start_rate": 0, "stages": [{"duration": "5s", "target": 2}]},
    "lifecycle": {"mix": [
        {"weight": 0.5, "random": {"outcomes": {"success": 0.5, "rollback": 0.5},
                                   "download_duration": {"lognormal": {"median": "30s", "sigma": 0.5}}}},
        {"weight": 0.5, "scripted": {"steps": [{"status": "Acknowledged"},
                                               {"status": "Downloading", "progress": 0, "delay": "1s"}]}},
    ]},
    "thresholds": {"lost": "== 0"}, "faults": [{"kind": "stall", "at": "1s", "params": {"a": 1}}],
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


PATHS = _paths(VALID)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(PATHS), documents)
def test_one_field_of_a_valid_scenario_replaced(path: tuple[Any, ...], value: Any) -> None:
    doc = copy.deepcopy(VALID)
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    _outcome(_dump(doc))


def test_the_base_document_is_valid() -> None:
    assert load_scenario_text(yaml.safe_dump(VALID), "base.yaml").name == "base"
