"""Test identity provider: keys made in the test, a JWKS file, signed tokens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://id.example.test/"
AUDIENCE = "mailbag-imap"


class Provider:
    def __init__(self, issuer: str = ISSUER) -> None:
        self.issuer = issuer
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())

    def jwks(self) -> dict[str, Any]:
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec.public_key()))
        rsa_jwk.update(kid="rsa1", use="sig", alg="RS256")
        ec_jwk.update(kid="ec1", use="sig", alg="ES256")
        return {"keys": [rsa_jwk, ec_jwk]}

    def write_jwks(self, path: Path) -> Path:
        path.write_text(json.dumps(self.jwks()))
        return path

    def token(self, alg: str = "RS256", **overrides: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": AUDIENCE, "sub": "user-1234",
            "email": "alice@example.org", "iat": now, "exp": now + 600,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        key, kid = (self.rsa, "rsa1") if alg.startswith("RS") else (self.ec, "ec1")
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})
