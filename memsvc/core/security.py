"""API key format, hashing and constant-time comparison."""

import hashlib
import hmac
import secrets

KEY_PREFIX = "msk_"


def new_api_key() -> tuple[str, str]:
    """A fresh key and its short public prefix (shown in listings; the secret is shown once)."""
    public = secrets.token_hex(4)
    return f"{KEY_PREFIX}{public}_{secrets.token_urlsafe(32)}", f"{KEY_PREFIX}{public}"


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(key.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())
