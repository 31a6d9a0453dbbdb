"""Password-reset tokens: signed, short-lived, and dead once the password changes.

The token carries a fingerprint of the current password hash, so it works
once: resetting the password changes the hash and every older token with it.
No table is needed.
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


def fingerprint(password_hash: str) -> str:
    """A short digest of a password hash: changes whenever the password does."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt="password-reset")


def reset_token(secret_key: str, user: User) -> str:
    """Return a token that lets whoever holds it set `user`'s password once, for an hour."""
    return _serializer(secret_key).dumps({"user": user.id, "pw": fingerprint(user.password_hash)})


def user_for_reset_token(
    session: Session, secret_key: str, token: str, max_age: int = RESET_MAX_AGE
) -> User | None:
    """Return the user a valid token is for; None if forged, expired or already used."""
    try:
        data = _serializer(secret_key).loads(token, max_age=max_age)
    except BadSignature:  # also SignatureExpired, a subclass
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user"), int):
        return None
    user = session.get(User, data["user"])
    if user is None or fingerprint(user.password_hash) != data.get("pw"):
        return None
    return user
