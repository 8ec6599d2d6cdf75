"""A minimal GraphQL-over-HTTP client for Edgehog's tenant API: JSON requests, and multipart for uploads.

JSON: `POST {"query", "variables"}` with `Authorization: Bearer <tenant token>`. Uploads follow the GraphQL
multipart request spec (jaydenseric/graphql-multipart-request-spec, which Absinthe.Plug accepts): parts
`operations` (the JSON, the file variable null), `map` ({"0": ["variables.<name>"]}) and `0` (the bytes).
A GraphQL `errors` array, an HTTP error or a mutation's `errors` list becomes an EdgehogError naming the
operation and Edgehog's message, never a traceback.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from typing import Any

from simulator.edgehog.config import EdgehogConfig
from simulator.errors import FleetsimError

__all__ = ["EdgehogError", "GraphQLClient"]

TIMEOUT_S = 30.0


class EdgehogError(FleetsimError):
    """Edgehog refused or failed a request (exit 2: the target, not fleetsim, is misconfigured)."""

    exit_code = 2


class GraphQLClient:
    def __init__(self, config: EdgehogConfig) -> None:
        self.config = config
        self._context = ssl.create_default_context(cafile=config.ca_file or None)
        self.requests = 0

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        body = json.dumps({"query": document, "variables": dict(variables or {})}).encode()
        return self._post(document, body, "application/json")

    def upload(self, document: str, variables: Mapping[str, Any], file_variable: str, filename: str,
               content: bytes) -> dict[str, Any]:
        ops = {"query": document, "variables": {**variables, file_variable: None}}
        boundary = f"fleetsim-{uuid.uuid4().hex}"
        parts = [
            ("operations", None, json.dumps(ops).encode()),
            ("map", None, json.dumps({"0": [f"variables.{file_variable}"]}).encode()),
            ("0", filename, content),
        ]
        chunks: list[bytes] = []
        for name, fname, data in parts:
            disposition = f'form-data; name="{name}"' + (f'; filename="{fname}"' if fname else "")
            kind = "application/octet-stream" if fname else "application/json"
            chunks.append(f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n"
                          .encode() + data + b"\r\n")
        chunks.append(f"--{boundary}--\r\n".encode())
        return self._post(document, b"".join(chunks), f"multipart/form-data; boundary={boundary}")

    def _post(self, document: str, body: bytes, content_type: str) -> dict[str, Any]:
        name = _operation_name(document)
        request = urllib.request.Request(self.config.graphql_url, data=body, method="POST", headers={
            "Content-Type": content_type, "Accept": "application/json",
            "Authorization": f"Bearer {self.config.token}"})
        self.requests += 1
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._context) as resp:
                doc = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise EdgehogError(f"Edgehog {name}: HTTP {exc.code} {exc.read()[:300]!r}") from None
        except (OSError, ValueError) as exc:
            raise EdgehogError(f"Edgehog unreachable at {self.config.graphql_url} ({name}): {exc}") from None
        if not isinstance(doc, dict):
            raise EdgehogError(f"Edgehog {name}: not a GraphQL response: {str(doc)[:200]}")
        errors = doc.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = first.get("message") if isinstance(first, dict) else first
            raise EdgehogError(f"Edgehog {name}: {message}")
        data = doc.get("data")
        return data if isinstance(data, dict) else {}


def _operation_name(document: str) -> str:
    words = document.split("(", 1)[0].split()
    return words[1] if len(words) > 1 else "request"


def mutation_result(data: Mapping[str, Any], field: str, what: str) -> dict[str, Any]:
    """`data[field].result`, or an EdgehogError with the mutation's own error messages."""
    payload = data.get(field) or {}
    errors = payload.get("errors") or []
    if errors:
        messages = "; ".join(f"{','.join(e.get('fields') or [])}: {e.get('message')}" for e in errors)
        raise EdgehogError(f"Edgehog refused to {what}: {messages}")
    result = payload.get("result")
    if not isinstance(result, dict):
        raise EdgehogError(f"Edgehog did not {what} (no result)")
    return result
