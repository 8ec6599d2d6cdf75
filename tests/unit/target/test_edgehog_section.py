"""The target file's `edgehog:` section: GraphQL endpoint, tenant token (given or signed), one line per problem."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulator.errors import ConfigErrors
from simulator.generator.target_file import read_target_file

BASE = "pairing_url: https://api.example.com/pairing\nrealm: staging\nagent_jwt: a.b.c\n"


def _read(tmp_path: Path, section: str, env: dict[str, str] | None = None) -> object:
    path = tmp_path / "target.yaml"
    path.write_text(BASE + section)
    return read_target_file(path, tmp_path / "state", env=env or {}).edgehog


def test_token_from_env_and_endpoint(tmp_path: Path) -> None:
    config = _read(tmp_path, "edgehog:\n  url: https://edgehog.example.com/\n  tenant: acme\n"
                             "  tenant_jwt: ${EDGEHOG_JWT}\n  drive: manual\n  poll_interval: 500ms\n",
                   env={"EDGEHOG_JWT": "x.y.z"})
    assert config is not None
    assert config.graphql_url == "https://edgehog.example.com/tenants/acme/api"  # type: ignore[attr-defined]
    assert (config.token, config.drive, config.poll_interval_s) == ("x.y.z", "manual", 0.5)  # type: ignore[attr-defined]


def test_token_signed_from_the_tenant_key(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    (tmp_path / "tenant.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    config = _read(tmp_path, "edgehog:\n  url: http://127.0.0.1:4000\n  tenant: acme\n"
                             "  tenant_private_key: tenant.key\n")
    claims = jwt.decode(config.token, key.public_key(), algorithms=["ES256"])  # type: ignore[attr-defined]
    assert claims["e_tga"] == "*" and claims["exp"] > claims["iat"]


@pytest.mark.parametrize(("section", "message"), [
    ("edgehog:\n  url: https://e.example.com\n  tenant: acme\n",
     "target.yaml:5: edgehog.tenant_jwt: give exactly one of tenant_jwt or tenant_private_key"),
    ("edgehog:\n  url: ftp://e.example.com\n  tenant: acme\n  tenant_jwt: a.b.c\n",
     "target.yaml:5: edgehog.url: scheme must be http or https, got 'ftp://e.example.com'"),
    ("edgehog:\n  url: https://e.example.com\n  tenant: acme\n  tenant_jwt: a.b.c\n  drive: yolo\n",
     "target.yaml:8: edgehog.drive: expected campaign or manual, got 'yolo'"),
    ("edgehog:\n  url: https://e.example.com\n  tenant: acme\n  tenant_jwt: a.b.c\n  colour: red\n",
     "target.yaml:8: edgehog.colour: unknown key 'colour'; allowed: url, tenant, tenant_jwt, tenant_private_key, "
     "ca_file, drive, handle_prefix, base_image_file, poll_interval"),
])
def test_bad_section_is_one_line_naming_file_line_field(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        _read(tmp_path, section)
    assert [str(e) for e in caught.value.errors] == [f"{tmp_path}/{message}"]
