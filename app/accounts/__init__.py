"""Accounts: signing up, signing in with a rate limit, and resetting a forgotten password.

Plain functions over a SQLAlchemy session, with no Flask in sight, so the
worker's mail jobs and the web tier share them. None of them commits: the
caller owns the transaction, so a user row and its welcome email commit
together or not at all.
"""

from app.accounts.ratelimit import RateLimited
from app.accounts.service import (
    TooManyAttempts,
    authenticate,
    change_password,
    confirm_address,
    confirm_with_password,
    end_sessions,
    find,
    normalize_email,
    record_failed_sign_in,
    request_password_reset,
    sign_in_delay,
    sign_up,
)
from app.accounts.tokens import (
    confirm_token,
    fingerprint,
    reset_token,
    user_for_confirm_token,
    user_for_reset_token,
)

__all__ = [
    "RateLimited",
    "TooManyAttempts",
    "authenticate",
    "change_password",
    "confirm_address",
    "confirm_token",
    "confirm_with_password",
    "end_sessions",
    "find",
    "fingerprint",
    "normalize_email",
    "record_failed_sign_in",
    "request_password_reset",
    "reset_token",
    "sign_in_delay",
    "sign_up",
    "user_for_confirm_token",
    "user_for_reset_token",
]
