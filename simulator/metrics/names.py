"""Every metric name once (docs/design.md principle 10), and where each lives in summary.json.

Latency path names are always carried with their numbers (docs/design.md principle 6: never a latency without its
path). Threshold names are k6-style flat strings (`ack_latency_p99_ms`, `lost`, ...) that scenario
`thresholds:` and `fleetsim compare` use; the field of simulator.metrics.run_summary that holds each one
names it (its metadata), and simulator.metrics.metric_table derives the table from those fields.
"""

from __future__ import annotations

__all__ = [
    "ACKED_EPS",
    "ACK_LATENCY_CORRECTED_P99_MS",
    "ACK_LATENCY_P50_MS",
    "ACK_LATENCY_P99_MS",
    "CORRECTED_PATHS",
    "DELIVERED_EPS",
    "DUPLICATED",
    "E2E_DEVICE_T_LATENCY_P99_MS",
    "E2E_LATENCY_CORRECTED_P99_MS",
    "E2E_LATENCY_P50_MS",
    "E2E_LATENCY_P99_MS",
    "ERRORS_OUTSIDE_FAULTS",
    "GENERATOR_CPU_PCT",
    "LATE",
    "LOOP_LAG_P99_MS",
    "LOST",
    "LOST_ACKED_NOT_ARRIVED",
    "LOST_NEVER_ACKED",
    "LOST_OUTSIDE_FAULTS",
    "LOST_PUBLISH_FAILED",
    "LOST_REASONS",
    "OFFERED_EPS",
    "ONBOARDING_CONNECT_P99_MS",
    "ONBOARDING_PHASES",
    "OTA_FAILURE_PCT",
    "OTA_STUCK",
    "OTA_SUCCESS",
    "PATH_ACK",
    "PATH_ACK_CORRECTED",
    "PATH_E2E",
    "PATH_E2E_CORRECTED",
    "PATH_E2E_DEVICE_T",
    "PATH_LABELS",
    "PATH_LOOP_LAG",
    "PATH_ONBOARDING",
    "PATH_SEND_LAG",
    "PUBLISH_ERRORS",
    "REORDERED",
    "SEND_LAG_P99_MS",
    "SERIES_PATHS",
    "UNEXPECTED",
    "onboarding_path",
]

# --- latency paths (histogram names; also the `Tag=` of latency.hlog lines) --------------------------------
PATH_ACK = "ack"  # publish() -> PUBCOMP/PUBACK (QoS legs), raw: acked - sent
PATH_ACK_CORRECTED = "ack_corrected"  # acked - intended (coordinated omission corrected, principle 5)
PATH_E2E = "e2e"  # observer arrival - sent (needs the send/arrival join)
PATH_E2E_CORRECTED = "e2e_corrected"  # observer arrival - intended
PATH_E2E_DEVICE_T = "e2e_device_t"  # observer arrival - the device's `t` (what Astarte triggers report)
PATH_SEND_LAG = "send_lag"  # sent - intended: how late the generator itself was (generator health)
PATH_LOOP_LAG = "loop_lag"  # gevent event-loop lag measured by the runner (generator health)
# One connect's whole onboarding (sum of the phases it ran): summary.json's latency_ms.onboarding.{p50..count}
# (issue 6 asks for one percentile set per path; the per-phase sets sit beside it under their phase names).
PATH_ONBOARDING = "onboarding"

# Human labels (report, terminal): the path name always travels with its meaning.
PATH_LABELS = {
    PATH_ACK: "ack: publish -> PUBCOMP/PUBACK (raw, from actual send)",
    PATH_ACK_CORRECTED: "ack_corrected: publish -> ack from the intended send time",
    PATH_E2E: "e2e: publish -> observer arrival (raw)",
    PATH_E2E_CORRECTED: "e2e_corrected: intended send -> observer arrival",
    PATH_E2E_DEVICE_T: "e2e_device_t: device `t` -> observer arrival",
    PATH_SEND_LAG: "send_lag: intended -> actual send (generator)",
    PATH_LOOP_LAG: "loop_lag: event-loop lag (generator)",
    PATH_ONBOARDING: "onboarding: one whole connect (sum of its phases)",
}

# Onboarding phases, as in simulator.transports.base.OnboardingTimes.
ONBOARDING_PHASES = ("registration", "certificate", "pairing_info", "connect", "handshake")


def onboarding_path(phase: str) -> str:
    """Histogram name of one onboarding phase, e.g. `onboarding.connect`."""
    return f"onboarding.{phase}"


# Raw path -> its coordinated-omission-corrected twin.
CORRECTED_PATHS = {PATH_ACK: PATH_ACK_CORRECTED, PATH_E2E: PATH_E2E_CORRECTED}
# Paths that get p50/p99 per second in timeseries.csv and an interval per second in latency.hlog.
SERIES_PATHS = (PATH_ACK, PATH_ACK_CORRECTED, PATH_E2E, PATH_E2E_CORRECTED, PATH_E2E_DEVICE_T, PATH_SEND_LAG)

# --- lost-event reasons (accounting, principle 7) ----------------------------------------------------------
LOST_PUBLISH_FAILED = "publish_failed"  # publish() raised / never left the device (sent is None or error)
LOST_NEVER_ACKED = "never_acked"  # left the device, no PUBCOMP/PUBACK by the end
LOST_ACKED_NOT_ARRIVED = "acked_not_arrived"  # the broker acked it, the observer never saw it
LOST_REASONS = (LOST_PUBLISH_FAILED, LOST_NEVER_ACKED, LOST_ACKED_NOT_ARRIVED)

# --- threshold names (k6-style) -----------------------------------------------------------------------------
ACK_LATENCY_P50_MS = "ack_latency_p50_ms"
ACK_LATENCY_P99_MS = "ack_latency_p99_ms"
ACK_LATENCY_CORRECTED_P99_MS = "ack_latency_corrected_p99_ms"
E2E_LATENCY_P50_MS = "e2e_latency_p50_ms"
E2E_LATENCY_P99_MS = "e2e_latency_p99_ms"
E2E_LATENCY_CORRECTED_P99_MS = "e2e_latency_corrected_p99_ms"
E2E_DEVICE_T_LATENCY_P99_MS = "e2e_device_t_latency_p99_ms"
ONBOARDING_CONNECT_P99_MS = "onboarding_connect_p99_ms"
SEND_LAG_P99_MS = "send_lag_p99_ms"
LOOP_LAG_P99_MS = "loop_lag_p99_ms"
GENERATOR_CPU_PCT = "generator_cpu_pct"
LOST = "lost"
DUPLICATED = "duplicated"
REORDERED = "reordered"
LATE = "late"
UNEXPECTED = "unexpected"
PUBLISH_ERRORS = "publish_errors"
OFFERED_EPS = "offered_eps"
ACKED_EPS = "acked_eps"
DELIVERED_EPS = "delivered_eps"
OTA_STUCK = "ota.stuck"
OTA_FAILURE_PCT = "ota.failure_pct"
OTA_SUCCESS = "ota.success"
LOST_OUTSIDE_FAULTS = "lost_outside_faults"  # lost, minus what injected faults caused (issue 15)
ERRORS_OUTSIDE_FAULTS = "errors_outside_faults"
