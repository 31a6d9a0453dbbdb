"""Emailed tokens: signed, short-lived, and dead once used. No table is needed.

A reset token carries a fingerprint of the current password hash, so it
works once: resetting the password changes the hash and every older token
with it. A confirmation token works only while the account is unconfirmed,
so it too works once.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app.models import User

#: How long a reset link works, in seconds.
RESET_MAX_AGE = 3600
#: The site's path for a reset link; the worker builds links, the web tier serves them.
RESET_PATH = "/reset/"
#: How long a confirmation link works, in seconds: long enough for mail that is read tomorrow.
CONFIRM_MAX_AGE = 2 * 24 * 3600
#: The site's path for a confirmation link.
CONFIRM_PATH = "/confirm/"


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash: changes whenever the password does."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _serializer(secret_key: str, salt: str = "password-reset") -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=salt)


def reset_token(secret_key: str, user: User) -> str:
    """Return a token that lets whoever holds it set `user`'s password once, for an hour."""
    return _serializer(secret_key).dumps({"user": user.id, "pw": fingerprint(user.password_hash)})


def user_for_reset_token(
    session: Session,
    secret_key: str,
    token: str,
    max_age: int = RESET_MAX_AGE,
    *,
    lock: bool = False,
) -> User | None:
    """Return the user a valid token is for; None if forged, expired or already used.

    With `lock` (about to use the link), the user's row stays locked to the end of
    the transaction: a second use racing the first waits, then finds the link used.
    """
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadSignature:  # also SignatureExpired, a subclass
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user"), int):
        return None
    user = session.get(User, data["user"], with_for_update=lock, populate_existing=lock)
    if user is None or fingerprint(user.password_hash) != data.get("pw"):
        return None
    return user


def confirm_token(secret_key: str, user: User) -> str:
    """Return a token that confirms `user`'s address once, for CONFIRM_MAX_AGE."""
    return _serializer(secret_key, "confirm-address").dumps({"user": user.id, "email": user.email})


def user_for_confirm_token(
    session: Session, secret_key: str, token: str, max_age: int = CONFIRM_MAX_AGE
) -> User | None:
    """Return the unconfirmed user a valid token is for; None if forged, expired or used."""
    try:
        data = _serializer(secret_key, "confirm-address").loads(token, max_age=max_age)
    except BadSignature:  # also SignatureExpired, a subclass
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user"), int):
        return None
    user = session.get(User, data["user"])
    if user is None or user.confirmed_at is not None or user.email != data.get("email"):
        return None
    return user
