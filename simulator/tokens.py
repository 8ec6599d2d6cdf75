"""Signing a JWT with a private key the user holds (a realm's for the Pairing API, a tenant's for Edgehog)."""

from __future__ import annotations

import time
from collections.abc import Mapping

__all__ = ["sign_jwt"]


def sign_jwt(key_pem: bytes, claims: Mapping[str, object], ttl_s: int) -> str:
    """`claims` + iat/exp (now + `ttl_s` seconds), signed ES256 for an EC key or RS256 for an RSA key (the two
    kinds Astarte and Edgehog accept)."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    key = serialization.load_pem_private_key(key_pem, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = "ES256"
    elif isinstance(key, rsa.RSAPrivateKey):
        algorithm = "RS256"
    else:
        raise ValueError(f"unsupported key type {type(key).__name__} (EC P-256 or RSA)")
    now = int(time.time())
    return jwt.encode({**claims, "iat": now, "exp": now + ttl_s}, key, algorithm=algorithm)
