"""Upstream credentials at rest: Fernet encryption with rotatable keys (never stored or returned in clear)."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from apps.publishing.conf import publishing_settings


def _fernet() -> MultiFernet:
    keys = list(publishing_settings.CREDENTIAL_KEYS or [])
    if not keys:
        digest = hashlib.sha256(b"llm-marketplace:upstream-credentials:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt_secret(secret: str) -> str:
    """The encrypted token of `secret` ('' for no secret)."""
    return _fernet().encrypt(secret.encode()).decode() if secret else ""


def decrypt_secret(token: str) -> str:
    """The secret behind a token ('' for none); a token no configured key opens raises `ValueError`."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("The upstream credential cannot be decrypted with the configured keys.") from None
