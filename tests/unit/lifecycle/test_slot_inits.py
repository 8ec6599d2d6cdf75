"""The hand-written `__init__`s of the planner's frozen slots dataclasses (simulator.slot_setters) are the ones
dataclass would generate: the same parameters in field order with the fields' defaults and annotations, every
field set, still frozen, and replace/pickle/eq/hash as before."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from typing import Any

import pytest

from simulator.events import ActionKind, OtaEvent, OtaStatus, OtaStatusCode, PlannedAction

SAMPLES: dict[type, tuple[Any, ...]] = {
    PlannedAction: (3, 1_250_000, ActionKind.PUBLISH, "io.edgehog.devicemanager.OTAEvent", "/event",
                    "1.0.1", 2, 7),
    OtaEvent: ("4a8a9b52-0c5e-4f0e-9e0a-2b6f3f1f9d10", OtaStatus.ERROR, 40, OtaStatusCode.IO_ERROR, "boom"),
}
CLASSES = list(SAMPLES)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_the_signature_is_the_generated_one(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    hints = inspect.get_annotations(cls.__init__)
    assert {name: hint for name, hint in hints.items() if name != "return"} == {f.name: f.type for f in fields}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_set_and_the_instance_stays_frozen(cls: type) -> None:
    values = SAMPLES[cls]
    names = [f.name for f in dataclasses.fields(cls)]
    by_position, by_name = cls(*values), cls(**dict(zip(names, values, strict=True)))
    assert [getattr(by_position, n) for n in names] == list(values)
    assert by_position == by_name and hash(by_position) == hash(by_name)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(by_position, names[0], values[0])
    assert pickle.loads(pickle.dumps(by_position)) == by_position
    changed = dataclasses.replace(by_position, **{names[1]: values[1]})
    assert changed == by_position and changed is not by_position


def test_defaults_fill_the_omitted_fields() -> None:
    assert PlannedAction(0, 5, ActionKind.REBOOT, "", "", None) == PlannedAction(0, 5, ActionKind.REBOOT, "", "",
                                                                                  None, 0, 0)
    assert OtaEvent("u", OtaStatus.DEPLOYED) == OtaEvent("u", OtaStatus.DEPLOYED, 0, OtaStatusCode.NONE, "")
