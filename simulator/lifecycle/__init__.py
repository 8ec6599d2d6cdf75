"""The OTA lifecycle of one device: inputs, phases and transition table, the pure machine, random draws,
per-operation plans and the scripted-lifecycle check (edgehog-device-runtime src/ota/; docs/protocol.md
section 4)."""

from simulator.lifecycle.draws import OperationDraw, draw_operation, operation_inputs, request_uuid
from simulator.lifecycle.machine import OtaMachine
from simulator.lifecycle.plans import Firmware, OperationPlan, plan_operation
from simulator.lifecycle.script_check import check_script
from simulator.lifecycle.states import TRANSITIONS, Phase

__all__ = [
    "TRANSITIONS",
    "Firmware",
    "OperationDraw",
    "OperationPlan",
    "OtaMachine",
    "Phase",
    "check_script",
    "draw_operation",
    "operation_inputs",
    "plan_operation",
    "request_uuid",
]
