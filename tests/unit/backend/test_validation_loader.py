"""The shared interface loader: bundled definitions parsed by the SDK, and one clear error per bad file."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.errors import ConfigErrors
from simulator.interfaces.loader import INTERFACES_DIR, interface_json, load_interfaces


def test_bundled_interfaces_load_with_the_sdk_model() -> None:
    interfaces = load_interfaces()
    assert len(interfaces) == 10
    ota = interfaces["io.edgehog.devicemanager.OTAEvent"]
    assert (ota.version_major, ota.version_minor, ota.aggregation) == (0, 1, "object")
    assert ota.get_reliability("/event") == 2
    assert load_interfaces() is interfaces  # cached
    assert load_interfaces(INTERFACES_DIR) is interfaces


def test_interface_json_is_a_copy() -> None:
    data = interface_json("io.edgehog.devicemanager.OTARequest")
    data["mappings"].clear()
    assert len(interface_json("io.edgehog.devicemanager.OTARequest")["mappings"]) == 3
    with pytest.raises(KeyError):
        interface_json("com.example.Missing")


def test_bad_files_are_named_with_their_line(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{\n  "interface_name": "a.B",\n  oops\n}\n')
    (tmp_path / "b.json").write_text('{"interface_name": "b.C", "version_major": 0, "version_minor": 0,'
                                     ' "type": "properties", "ownership": "device", "mappings": []}')
    with pytest.raises(ConfigErrors) as err:
        load_interfaces(tmp_path)
    assert f"{tmp_path / 'a.json'}:3: invalid JSON" in str(err.value)
    with pytest.raises(ConfigErrors, match="does not exist"):
        load_interfaces(tmp_path / "nowhere")
    (tmp_path / "a.json").unlink()
    with pytest.raises(ConfigErrors) as err:
        load_interfaces(tmp_path)
    assert f"{tmp_path / 'b.json'}: invalid interface: Both Major and Minor" in str(err.value)
