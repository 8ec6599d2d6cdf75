"""The YAML loader: values land in the model; every problem is reported with file:line and dotted field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from simulator.errors import ConfigError, ConfigErrors
from simulator.scenario.loader import load_scenario, load_scenario_text
from simulator.scenario.model import Distribution, FaultSpec, RampStage


def load(text: str, source: str = "s.yaml"):  # type: ignore[no-untyped-def]
    return load_scenario_text(textwrap.dedent(text), source)


def errors_of(text: str, source: str = "s.yaml") -> list[ConfigError]:
    with pytest.raises(ConfigErrors) as info:
        load(text, source)
    return info.value.errors


def one_error(text: str) -> ConfigError:
    errors = errors_of(text)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


FULL = """\
name: full
realm: acme
seed: 42
fleet:
  devices: 20
  id_scheme: sequential
  id_prefix: "ab"
  base_image: {name: os, version: 2.0.0, build_id: 2026-11-01T00:00:00Z, fingerprint: abc}
  target_version: 2.1.0
time_scale: 60
duration: 1m30s
transport: memory
target: targets/prod.yaml
mode: campaign
arrival: {model: ramping, start: 250ms, start_rate: 1, stages: [{duration: 10s, target: 5}], phase: aligned}
lifecycle:
  random:
    outcomes: {success: 0.9, rollback: 0.1}
    streaming: true
    download_duration: {lognormal: {median: 30s, sigma: 0.5}}
    deploy_duration: {uniform: [10s, 40s]}
    reboot_duration: {exponential: {mean: 20s}}
    acknowledge_delay: 250ms
    progress_step: 20
    download_error_probability: 0.1
    error_codes: {NetworkError: 0.6, IOError: 0.2, InternalError: 0.2}
    double_update_probability: 0.05
thresholds: {ack_latency_p99_ms: "< 50", lost: "== 0", ota.failure_pct: "<= 1.5%", on_missing: fail}
faults: [{kind: network_delay, at: 10s, duration: 5s, devices: 0.1, params: {delay_ms: 50}}]
campaign: {max_in_progress: 5, request_timeout: 2m, request_retries: 1, max_failure_percentage: 20}
x-owner: qa team
"""


def test_full_scenario_values() -> None:
    s = load(FULL)
    assert (s.name, s.realm, s.seed, s.source) == ("full", "acme", 42, "s.yaml")
    assert s.fleet.devices == 20 and s.fleet.id_scheme == "sequential" and s.fleet.id_prefix == "ab"
    assert s.fleet.base_image.build_id == "2026-11-01T00:00:00Z"  # stays text, not a datetime
    assert (s.fleet.base_image.version, s.fleet.target_version) == ("2.0.0", "2.1.0")
    assert (s.time_scale, s.duration, s.transport, s.mode) == (60.0, 90.0, "memory", "campaign")
    assert s.target == "targets/prod.yaml"
    assert s.arrival.model == "ramping" and s.arrival.start == 0.25 and s.arrival.phase == "aligned"
    assert s.arrival.stages == (RampStage(duration=10.0, target=5.0),)
    (entry,) = s.lifecycle
    r = entry.random
    assert r is not None and entry.weight == 1.0
    assert r.outcomes == (("success", 0.9), ("rollback", 0.1))
    assert r.streaming is True and r.progress_step == 20
    assert r.download_duration == Distribution("lognormal", median=30.0, sigma=0.5)
    assert r.deploy_duration == Distribution("uniform", low=10.0, high=40.0)
    assert r.reboot_duration == Distribution("exponential", mean=20.0)
    assert r.acknowledge_delay == Distribution("fixed", value=0.25)
    assert r.error_codes == (("NetworkError", 0.6), ("IOError", 0.2), ("InternalError", 0.2))
    assert s.thresholds == (("ack_latency_p99_ms", "< 50"), ("lost", "== 0"), ("ota.failure_pct", "<= 1.5%"))
    assert s.thresholds_on_missing == "fail"
    assert s.faults == (FaultSpec("network_delay", 10.0, 5.0, 0.1, (("delay_ms", "50"),)),)
    assert s.campaign.max_in_progress == 5 and s.campaign.request_timeout_s == 120.0
    assert s.extra == {"x-owner": "qa team"}


def test_defaults_and_name_from_stem(tmp_path: Path) -> None:
    path = tmp_path / "my-run.yaml"
    path.write_text("seed: 3\n")
    s = load_scenario(path)
    assert s.name == "my-run" and s.seed == 3 and s.source == str(path)
    assert s.fleet.devices == 10 and s.arrival.model == "constant"


def test_scripted_steps_keep_their_lines() -> None:
    s = load("""\
        lifecycle:
          scripted:
            reboot_duration: 5s
            steps:
              - {status: Acknowledged}
              - status: Downloading
                progress: 0
                delay: 1s
        """)
    scripted = s.lifecycle[0].scripted
    assert scripted is not None and scripted.reboot_duration == 5.0
    assert [(st.status, st.progress, st.delay, st.line) for st in scripted.steps] == [
        ("Acknowledged", 0, 0.0, 5), ("Downloading", 0, 1.0, 6)]


def test_mix_weights() -> None:
    s = load("""\
        lifecycle:
          mix:
            - {weight: 0.75, name: ok, random: {outcomes: {success: 1}}}
            - {weight: 0.25, scripted: {steps: [{status: Acknowledged}]}}
        """)
    assert [(e.weight, e.name, e.random is not None) for e in s.lifecycle] == [
        (0.75, "ok", True), (0.25, "", False)]


# --- each kind of error, with its line and field ---------------------------------------------------------

def test_misspelled_key_names_key_line_and_suggestion() -> None:
    err = one_error("seed: 1\nfleet:\n  devicse: 3\n")
    assert (err.file, err.line, err.field) == ("s.yaml", 3, "fleet.devicse")
    assert "unknown key 'devicse'" in err.message and "did you mean 'devices'?" in err.message
    assert str(err) == "s.yaml:3: fleet.devicse: " + err.message


def test_wrong_types() -> None:
    errors = errors_of("seed: abc\nfleet: {devices: true}\ntime_scale: [1]\nfaults: {kind: stall}\n")
    assert [(e.line, e.field) for e in errors] == [(1, "seed"), (2, "fleet.devices"), (3, "time_scale"),
                                                  (4, "faults")]
    assert "expected an integer" in errors[1].message and "expected a list" in errors[3].message


@pytest.mark.parametrize(
    ("text", "line", "field", "needle"),
    [
        ("lifecycle:\n  random:\n    outcomes: {success: 0.5, rollback: 0.4}\n", 3,
         "lifecycle.random.outcomes", "must sum to 1"),
        ("arrival: {model: constant, rate: 0}\n", 1, "arrival.rate", "must be > 0"),
        ("arrival: {model: poisson, rate: -1}\n", 1, "arrival.rate", "must be > 0"),
        ("duration: 0s\n", 1, "duration", "must be > 0"),
        ("time_scale: -2\n", 1, "time_scale", "must be > 0"),
        ("lifecycle: {random: {progress_step: 5}}\n", 1, "lifecycle.random.progress_step", "between 10 and"),
        ("lifecycle: {random: {progress_step: 101}}\n", 1, "lifecycle.random.progress_step", "between 10"),
        ("fleet:\n  devices: 0\n", 2, "fleet.devices", "between 1 and"),
        ("lifecycle: {scripted: {steps: [{status: Acknowleged}]}}\n", 1,
         "lifecycle.scripted.steps[0].status", "did you mean 'Acknowledged'?"),
        ("lifecycle: {scripted: {steps: [{status: Failure, code: Cancelled}]}}\n", 1,
         "lifecycle.scripted.steps[0].code", "did you mean 'Canceled'?"),
        ("transport: mqtt\n", 1, "transport", "'mqtt'"),
        ("arrival: {model: steady}\n", 1, "arrival.model", "unknown arrival model 'steady'"),
        ("thresholds:\n  lost: \"= 0\"\n", 2, "thresholds.lost", "must be an operator"),
        ("thresholds:\n  Lost: \"== 0\"\n", 2, "thresholds.Lost", "[a-z_.0-9]+"),
        ("thresholds:\n  lost_outside_fault: \"== 0\"\n", 2, "thresholds.lost_outside_fault",
         "did you mean 'lost_outside_faults'?"),
        ("thresholds:\n  lost: \"== 0\"\n  on_missing: ignore\n", 3, "thresholds.on_missing", "'ignore'"),
        ("lifecycle: {random: {error_codes: {NetworkError: 1.5}}}\n", 1,
         "lifecycle.random.error_codes.NetworkError", "probability"),
        ("lifecycle: {random: {deploy_duration: {uniform: [5s, 1s]}}}\n", 1,
         "lifecycle.random.deploy_duration.uniform", "above high"),
        ("duration: 5 minutes\n", 1, "duration", "expected a duration like 30s"),
        ("arrival: {model: burst}\n", 1, "arrival.count", "needs count >= 1"),
        ("arrival: {model: ramping, stages: [{duration: 0s, target: 1}]}\n", 1,
         "arrival.stages[0].duration", "must be > 0"),
        ("faults:\n  - {kind: stall, devices: 0}\n", 2, "faults[0].devices", "(0, 1]"),
        ("realm: my_realm\n", 1, "realm", "not a valid Astarte realm"),
        ("fleet: {id_scheme: sequential, id_prefix: thirteen-byte}\n", 1, "fleet.id_prefix", "at most 12"),
        ("fleet: {id_prefix: ab}\n", 1, "fleet.id_prefix", "only used with id_scheme: sequential"),
        ("fleet: {target_version: v2}\n", 1, "fleet.target_version", "semantic version"),
        ("campaign: {request_timeout: 10s}\n", 1, "campaign.request_timeout", ">= 30 s"),
        ("lifecycle:\n  mix:\n    - {weight: 0.5, random: {}}\n    - {weight: 0.4, random: {}}\n", 2,
         "lifecycle.mix", "must sum to 1"),
    ],
)
def test_impossible_values(text: str, line: int, field: str, needle: str) -> None:
    err = one_error(text)
    assert (err.line, err.field) == (line, field), str(err)
    assert needle in err.message, str(err)


def test_mix_sum_reported_at_mix_key() -> None:
    errors = errors_of("seed: 1\nlifecycle:\n  mix:\n    - {weight: 0.5, random: {}}\n")
    assert [(e.line, e.field) for e in errors] == [(3, "lifecycle.mix")]


def test_all_problems_collected_at_once() -> None:
    errors = errors_of("""\
        seed: -1
        duraton: 30s
        fleet: {devices: 0}
        arrival: {model: constant, rate: 0}
        lifecycle: {random: {outcomes: {succes: 1}}}
        """)
    assert [(e.line, e.field) for e in errors] == [
        (1, "seed"), (2, "duraton"), (3, "fleet.devices"), (4, "arrival.rate"),
        (5, "lifecycle.random.outcomes.succes")]


def test_no_echo_of_a_read_error() -> None:
    # the bad weight is reported once; the sum of the remaining one is not reported on top
    err = one_error("lifecycle: {random: {outcomes: {success: high, rollback: 0.1}}}\n")
    assert (err.line, err.field) == (1, "lifecycle.random.outcomes.success")
    assert err.message == "expected a number, got a string"


def test_yaml_syntax_error_has_the_parser_line() -> None:
    err = one_error("seed: 1\nfleet:\n  devices: [1, 2\nmode: self\n")
    assert err.line in (4, 5) and err.field == "" and err.message.startswith("YAML syntax error")


def test_unquoted_greater_than_is_reported() -> None:
    err = one_error("thresholds:\n  delivered_eps: >= 900\n")
    assert (err.file, err.line) == ("s.yaml", 2) and "quote threshold expressions" in err.message


def test_duplicate_key() -> None:
    err = one_error("seed: 1\nseed: 2\n")
    assert (err.line, err.field, err.message) == (2, "seed", "duplicate key")


def test_missing_required_keys() -> None:
    err = one_error("faults:\n  - {at: 1s}\n")
    assert (err.line, err.field, err.message) == (2, "faults[0].kind", "missing (required)")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "42\n", "- a\n- b\n", "a: 1\n---\nb: 2\n"])
def test_documents_that_are_not_a_scenario(text: str) -> None:
    errors = errors_of(text)
    assert len(errors) == 1 and errors[0].file == "s.yaml"


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as info:
        load_scenario(tmp_path / "nope.yaml")
    assert [str(e) for e in info.value.errors] == [f"{tmp_path / 'nope.yaml'}: no such file"]
    with pytest.raises(ConfigErrors) as info:
        load_scenario(tmp_path)  # a directory
    assert len(info.value.errors) == 1 and "cannot read" in info.value.errors[0].message
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigErrors) as info:
        load_scenario(bad)
    assert "not UTF-8" in info.value.errors[0].message


def test_self_referencing_alias_is_one_error() -> None:
    errors = errors_of("fleet: &a\n  base_image: *a\n")
    assert len(errors) == 1 and errors[0].file == "s.yaml"


def test_script_check_reports_illegal_step_at_its_line() -> None:
    pytest.importorskip("simulator.lifecycle.script_check")
    err = one_error("""\
        lifecycle:
          scripted:
            steps:
              - {status: Acknowledged}
              - {status: Deployed}
        """)
    assert (err.line, err.field) == (5, "lifecycle.scripted.steps[1]")
