"""The target file's `edgehog:` section: how fleetsim reaches a real Edgehog's tenant GraphQL API.

    edgehog:
      url: https://api.edgehog.example.com        # Edgehog's backend; the API is <url>/tenants/<tenant>/api
      tenant: acme                                # the tenant slug
      tenant_jwt: ${EDGEHOG_TENANT_JWT}           # a tenant token (claim e_tga) ...
      tenant_private_key: ./acme.key              # ... or the tenant's private key: fleetsim signs one
      ca_file: ./edgehog-ca.pem                   # optional (default: system CAs)
      drive: campaign                             # campaign (default) | manual (one OTA operation per device)
      handle_prefix: fleetsim                     # optional: handles of what fleetsim creates/reuses
      base_image_file: ./image.bin                # optional: uploaded as the base image (default: 64 KiB)
      poll_interval: 2s                           # optional: how often the campaign's status is read

`${NAME}` values come from the environment, like the rest of the target file. Edgehog checks only that the
token carries an `e_tga` claim (backend/lib/edgehog_web/auth/token.ex); a signed token gets `e_tga: "*"`,
ES256 for an EC key, RS256 for an RSA key, like Edgehog's own gen-edgehog-jwt tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from yaml.nodes import Node

from simulator.scenario.nodes import NodeReader, line_of
from simulator.tokens import sign_jwt

__all__ = ["EDGEHOG_KEYS", "EdgehogConfig", "read_edgehog_section", "sign_tenant_jwt"]

EDGEHOG_KEYS = ("url", "tenant", "tenant_jwt", "tenant_private_key", "ca_file", "drive", "handle_prefix",
                "base_image_file", "poll_interval")
TOKEN_TTL_S = 24 * 3600
_DRIVES = ("campaign", "manual")


@dataclass(frozen=True)
class EdgehogConfig:
    graphql_url: str  # <url>/tenants/<tenant>/api
    tenant: str
    token: str
    ca_file: str = ""
    drive: str = "campaign"
    handle_prefix: str = "fleetsim"
    base_image_file: str = ""  # "" = a generated placeholder image
    poll_interval_s: float = 2.0


class SectionReader(Protocol):
    """The target file's reader (simulator.generator.target_file): ${ENV} text and checked URLs."""

    r: NodeReader

    def text(self, node: Node, field: str) -> str | None: ...

    def url(self, node: Node, field: str, schemes: tuple[str, ...]) -> str | None: ...


def sign_tenant_jwt(key_pem: bytes, ttl_s: int = TOKEN_TTL_S) -> str:
    """An Edgehog tenant token signed with the tenant's private key (ES256 for EC, RS256 for RSA)."""
    return sign_jwt(key_pem, {"e_tga": "*"}, ttl_s)


def read_edgehog_section(rd: SectionReader, node: Node, base: Path) -> EdgehogConfig | None:
    """Check the section; problems go to rd.r.errors (file:line:field), None when any."""
    r = rd.r
    keys = r.mapping(node, "edgehog", EDGEHOG_KEYS)
    if keys is None or not r.require(node, keys, "edgehog", ("url", "tenant")):
        return None
    before = len(r.errors)
    url = rd.url(keys["url"], "edgehog.url", ("http", "https"))
    tenant = rd.text(keys["tenant"], "edgehog.tenant")
    if tenant is not None and (not tenant or "/" in tenant):
        r.error(line_of(keys["tenant"]), "edgehog.tenant", f"not a tenant slug: {tenant!r}")
    token = ""
    if ("tenant_jwt" in keys) == ("tenant_private_key" in keys):
        r.error(line_of(node), "edgehog.tenant_jwt", "give exactly one of tenant_jwt or tenant_private_key")
    elif "tenant_jwt" in keys:
        token = rd.text(keys["tenant_jwt"], "edgehog.tenant_jwt") or ""
        if token and token.count(".") != 2:
            r.error(line_of(keys["tenant_jwt"]), "edgehog.tenant_jwt", "not a JWT (three dot-separated parts)")
    else:
        key_path = rd.text(keys["tenant_private_key"], "edgehog.tenant_private_key")
        if key_path is not None:
            try:
                token = sign_tenant_jwt((base / key_path).read_bytes())
            except OSError as exc:
                r.error(line_of(keys["tenant_private_key"]), "edgehog.tenant_private_key",
                        f"cannot read {key_path}: {exc}")
            except (ValueError, TypeError) as exc:
                r.error(line_of(keys["tenant_private_key"]), "edgehog.tenant_private_key",
                        f"{key_path}: not a usable PEM private key ({exc})")
    values: dict[str, Any] = {}
    for key in ("ca_file", "base_image_file"):
        if key in keys:
            text = rd.text(keys[key], f"edgehog.{key}")
            if text is not None:
                path = base / text
                if not path.is_file():
                    r.error(line_of(keys[key]), f"edgehog.{key}", f"no such file: {path}")
                values[key] = str(path)
    if "drive" in keys:
        drive = rd.text(keys["drive"], "edgehog.drive")
        if drive is not None and drive not in _DRIVES:
            r.error(line_of(keys["drive"]), "edgehog.drive", f"expected campaign or manual, got {drive!r}")
        values["drive"] = drive
    if "handle_prefix" in keys:
        values["handle_prefix"] = rd.text(keys["handle_prefix"], "edgehog.handle_prefix")
    if "poll_interval" in keys:
        interval = r.duration(keys["poll_interval"], "edgehog.poll_interval")
        if interval is not None and interval <= 0:
            r.error(line_of(keys["poll_interval"]), "edgehog.poll_interval", "must be > 0")
        values["poll_interval_s"] = interval
    if len(r.errors) > before or url is None or tenant is None:
        return None
    endpoint = f"{url.rstrip('/')}/tenants/{tenant}/api"
    assert urlsplit(endpoint).hostname
    return EdgehogConfig(graphql_url=endpoint, tenant=tenant, token=token, **values)
