"""The Pairing API's agent token: an ES256 JWT with the `a_pa` claim, signed by a key kept in the state dir.

Astarte authorises `/agent/...` Pairing API calls with a JWT signed by the realm's private key and checked
with the realm's public key; its `a_pa` claim is a list of regular expressions matched against
"<METHOD>::<path>" where path is relative to the realm, e.g. "POST::agent/devices" (docs/protocol.md section 2;
astarte_pairing_api `auth` plug; the SDK's `__generate_token` in astarte/device/pairing_handler.py issues
`{"a_pa": [".*::.*"]}`). We keep one EC P-256 key (`realm_jwt.key`, 0600, reused across runs so a token
printed once stays valid). Verification is cached per token (a load test registers thousands of devices with
the same token; an ES256 verify costs ~0.1 ms, a dict lookup ~0.1 us).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from simulator.private_files import write_private

__all__ = ["AGENT_CLAIM", "AgentTokens"]

AGENT_CLAIM = "a_pa"
_ALGORITHM = "ES256"
# Default lifetime of an issued token (seconds): a week covers a soak test; Astarte leaves this to the issuer.
_DEFAULT_TTL_S = 7 * 24 * 3600
_CACHE_MAX = 1024


class AgentTokens:
    """Issue and check agent JWTs for one realm's Pairing API."""

    def __init__(self, state_dir: Path, key_name: str = "realm_jwt.key") -> None:
        self._path = Path(state_dir) / key_name
        self._lock = threading.Lock()
        self._key: ec.EllipticCurvePrivateKey | None = None
        # token -> (expiry, compiled a_pa patterns); only successfully verified tokens are cached.
        self._cache: dict[str, tuple[float, tuple[re.Pattern[str], ...]]] = {}

    @property
    def key_path(self) -> Path:
        return self._path

    def _private_key(self) -> ec.EllipticCurvePrivateKey:
        with self._lock:
            if self._key is None:
                self._key = self._load_or_create()
            return self._key

    def _load_or_create(self) -> ec.EllipticCurvePrivateKey:
        if self._path.exists():
            key = serialization.load_pem_private_key(self._path.read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{self._path}: not an EC private key")
            return key
        self._path.parent.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        write_private(self._path, pem)
        return key

    def issue_agent_token(self, ttl_s: int = _DEFAULT_TTL_S, paths: tuple[str, ...] = (".*::.*",)) -> str:
        """A signed token allowing `paths` ("METHOD-regex::path-regex"); ttl_s <= 0 means no expiry."""
        now = int(time.time())
        claims: dict[str, object] = {AGENT_CLAIM: list(paths), "iat": now}
        if ttl_s > 0:
            claims["exp"] = now + ttl_s
        return jwt.encode(claims, self._private_key(), algorithm=_ALGORITHM)

    def check(self, token: str, method: str = "POST", path: str = "agent/devices") -> bool:
        """True when `token` is ours, unexpired, and its `a_pa` claim authorises `METHOD::path`."""
        return self.authorise(token, method, path) == "ok"

    def authorise(self, token: str, method: str, path: str) -> str:
        """"ok", "unauthorized" (bad/expired token: HTTP 401) or "forbidden" (claim does not match: 403)."""
        cached = self._cache.get(token)
        if cached is None or cached[0] < time.time():
            cached = self._verify(token)
            if cached is None:
                return "unauthorized"
        target = f"{method}::{path}"
        # Astarte matches each claim regex against the whole "METHOD::path" string.
        if any(p.fullmatch(target) for p in cached[1]):
            return "ok"
        return "forbidden"

    def _verify(self, token: str) -> tuple[float, tuple[re.Pattern[str], ...]] | None:
        try:
            claims = jwt.decode(
                token, self._private_key().public_key(), algorithms=[_ALGORITHM],
                options={"require": ["iat"]},
            )
        except jwt.PyJWTError:
            return None
        raw = claims.get(AGENT_CLAIM)
        if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
            return None
        try:
            patterns = tuple(re.compile(p) for p in raw)
        except re.error:
            return None
        exp = claims.get("exp")
        expiry = float(exp) if isinstance(exp, int | float) else float("inf")
        entry = (expiry, patterns)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = entry
        return entry
