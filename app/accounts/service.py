"""Account actions over the caller's session; none of them commits."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import ColumnElement, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts import ratelimit
from app.config import Settings
from app.jobs import enqueue
from app.models import LoginAttempt, User

#: First key of the transaction advisory lock that serializes sign-ins per email
#: ("LOG"); distinct from the worker's life locks, which use their own namespace.
LOGIN_LOCK_NAMESPACE = 0x4C_4F47
#: One email may fail this many times more often from all addresses together than
#: from one, so a guesser spread over many addresses is stopped too.
EMAIL_FACTOR = 4
#: A client address may fail this many times more often than one (address, email)
#: before its answers slow down; it is never refused outright, because behind a
#: proxy or in an office many people share one address.
ADDRESS_FACTOR = 4
#: The first slowed answer waits this long; each further failure doubles it, at most
#: MAX_DOUBLINGS times (then LOGIN_SLOWDOWN_MAX caps it anyway, unless set above hours).
FIRST_DELAY = 0.25
MAX_DOUBLINGS = 16
#: Longest email kept for a refused sign-in: enough to tell attempts apart.
MAX_RECORDED_EMAIL = 254


class TooManyAttempts(Exception):
    """Too many failed sign-ins recently; `retry_after` says how many seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; retry in {retry_after} s")
        self.retry_after = retry_after


def normalize_email(email: str) -> str:
    """One spelling per address, in the form every mail server takes: an international
    domain in its ASCII (IDNA) form, full-width letters folded, lower case.

    Stored as typed, x@bücher.de needed SMTPUTF8 to be sent to, and a@ｅｘａｍｐｌｅ.com
    became a second account beside a@example.com, the same mailbox. Text that is
    no address at all (a failed sign-in's) is only NFC, stripped and lower-cased.
    """
    text = unicodedata.normalize("NFC", email).strip()
    try:
        valid = validate_email(text, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError:
        return text.lower()
    return str(valid.ascii_email or valid.normalized).lower()


def _spellings(email: str) -> list[str]:
    """The spellings an account of `email` may be stored under: `normalize_email`'s, and
    the one addresses were stored in before (NFC, stripped, lower case), so accounts
    made then are found without rewriting them, which code still running the old
    spelling during a deploy would then no longer find."""
    return list(dict.fromkeys([normalize_email(email), _old_spelling(email)]))


def _old_spelling(email: str) -> str:
    return unicodedata.normalize("NFC", email).strip().lower()


def find(session: Session, email: str) -> User | None:
    """The account of `email`, under either spelling (the current one first)."""
    spellings = _spellings(email)
    return session.scalar(
        select(User)
        .where(User.email.in_(spellings))
        .order_by((User.email == spellings[0]).desc())
        .limit(1)
    )


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash to check against when the email is unknown, so both failures take as long."""
    return generate_password_hash("no account has this password")


def sign_up(session: Session, settings: Settings, email: str, password: str) -> None:
    """Add an unconfirmed user and queue their welcome email, with its confirmation link.

    The caller answers the same whichever way it went, so the page never says
    whether the address had an account: the password is hashed either way
    (the time taken does not tell), a new account signs in only once its
    link is followed, and a taken address's holder is told by email instead
    ("someone tried to sign up with your address"). Each account gets at most
    one such email per `account_mail_rate`. The unique constraint decides a
    race; a savepoint keeps the session usable.
    """
    password_hash = generate_password_hash(password)
    holder = find(session, email)
    if holder is None:
        user = User(email=normalize_email(email), password_hash=password_hash)
        try:
            with session.begin_nested():
                session.add(user)
        except IntegrityError:
            holder = find(session, email)
        else:
            _mail_holder(session, settings, user, "accounts.send_welcome", "confirm-mail")
            return
    if holder is not None:
        # Never a confirmation link here: it would confirm whatever password this
        # sign-up chose, for whoever chose it. The holder can reset it instead.
        _mail_holder(session, settings, holder, "accounts.send_signup_attempt", "attempt-mail")


def confirm_address(session: Session, user: User) -> None:
    """Mark `user`'s address as theirs: they followed a link sent to it and gave the
    password chosen at sign-up (`confirm_with_password`), or set a new one by a reset link.

    Failed sign-ins made before are forgotten, as after a password change.
    """
    if user.confirmed_at is None:
        user.confirmed_at = session.scalar(select(func.now()))
        session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))


def _mail_holder(
    session: Session, settings: Settings, user: User, job: str, kind: str = "account-mail"
) -> None:
    """Queue `job` for `user` unless they were sent one of this `kind` within
    `account_mail_rate`. Confirmation links, reset links and "someone tried to sign
    up" notices each count apart: a new account's welcome does not hold back a
    reset link asked for right after, and notices anyone can set off by signing
    up with the address never hold back the holder's reset link."""
    try:
        ratelimit.hit(session, [(f"{kind}:{user.id}", settings.account_mail_rate)])
    except ratelimit.RateLimited:
        return  # said nothing either way: the page looks the same
    enqueue(session, job, {"user_id": user.id}, context=f"user {user.id}")


def authenticate(
    session: Session, settings: Settings, email: str, password: str, remote_addr: str
) -> User | None:
    """Return the user if the password is right, else record the failure and return None.

    An account not yet confirmed fails as a wrong password does (counted, and
    None), so sign-in does not tell what sign-up hides; only when its password
    is right is the confirmation link sent again, as often as
    `account_mail_rate` allows.

    Raises `TooManyAttempts` before checking anything once this email has
    failed too often from this address, or from all addresses together,
    within LOGIN_WINDOW. The client address alone never refuses (see
    `sign_in_delay`). The caller must commit in every case, or the failure is
    not counted.
    """
    typed, email = email, normalize_email(email)
    _guard_password_check(session, settings, email, remote_addr)
    user = find(session, typed)
    valid = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is not None and valid and user.confirmed_at is not None:
        session.execute(delete(LoginAttempt).where(LoginAttempt.email == email))
        return user
    if user is not None and valid:
        _mail_holder(session, settings, user, "accounts.send_welcome", "confirm-mail")
    session.add(LoginAttempt(email=email, remote_addr=remote_addr))
    return None


def confirm_with_password(
    session: Session, settings: Settings, user: User, password: str, remote_addr: str
) -> bool:
    """Confirm `user`'s address if `password` is the one chosen at sign-up; else count a
    failed sign-in and return False.

    The emailed link alone does not confirm: whoever signed up first with
    someone else's address chose the password, and the link's holder must
    know it (or reset it, which confirms too). A wrong password counts as a
    failed sign-in for the account's email under `authenticate`'s limits and
    raises `TooManyAttempts` likewise, so this form guesses no faster than
    sign-in. On success every other session of the account ends. The caller
    must commit in every case.
    """
    _guard_password_check(session, settings, user.email, remote_addr)
    if not check_password_hash(user.password_hash, password):
        session.add(LoginAttempt(email=user.email, remote_addr=remote_addr))
        return False
    confirm_address(session, user)  # forgets the failed sign-ins too
    end_sessions(session, user)
    return True


def _guard_password_check(
    session: Session, settings: Settings, email: str, remote_addr: str
) -> None:
    """Take the email's sign-in lock and raise `TooManyAttempts` if it failed too often."""
    # Sign-ins for one email wait for each other across every web process,
    # so two concurrent guesses cannot both read "4 failures" and both try.
    session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:email))"),
        {"namespace": LOGIN_LOCK_NAMESPACE, "email": email},
    )
    mine = LoginAttempt.email == email
    _check_rate(session, settings, mine & (LoginAttempt.remote_addr == remote_addr), 1)
    _check_rate(session, settings, mine, EMAIL_FACTOR)


def record_failed_sign_in(session: Session, email: str, remote_addr: str) -> None:
    """Count a sign-in refused before any check (a malformed or huge email) against the address.

    The email is kept printable and short, so no value a client sends can fail
    the insert and leave the attempt uncounted.
    """
    printable = "".join(c for c in email if c.isprintable())[:MAX_RECORDED_EMAIL]
    session.add(LoginAttempt(email=normalize_email(printable), remote_addr=remote_addr))


def sign_in_delay(session: Session, settings: Settings, remote_addr: str) -> float:
    """Seconds to hold back a sign-in answer for an address that failed too often.

    Past LOGIN_MAX_FAILURES x ADDRESS_FACTOR failures from one address within
    the window, each further failure doubles the wait, up to
    LOGIN_SLOWDOWN_MAX: a guesser slows to a crawl, while a person behind the
    same proxy still signs in with the right password.
    """
    threshold = settings.login_max_failures * ADDRESS_FACTOR
    recent = LoginAttempt.attempted_at > seconds_ago(settings.login_window)
    # An address is never refused, so its failures can pile up: count no further
    # than where the wait stops growing.
    newest = (
        select(LoginAttempt.id)
        .where(LoginAttempt.remote_addr == remote_addr, recent)
        .limit(threshold + MAX_DOUBLINGS + 1)
        .subquery()
    )
    failures = session.scalar(select(func.count()).select_from(newest))
    excess = (failures or 0) - threshold
    if excess < 0:
        return 0.0
    return float(min(settings.login_slowdown_max, FIRST_DELAY * 2 ** min(excess, MAX_DOUBLINGS)))


def seconds_ago(seconds: float) -> ColumnElement[datetime]:
    """The database's `now()` minus `seconds`: times are compared on one clock."""
    return func.now() - func.make_interval(0, 0, 0, 0, 0, 0, seconds)


def _check_rate(
    session: Session, settings: Settings, which: ColumnElement[bool], factor: int
) -> None:
    window = settings.login_window
    recent = LoginAttempt.attempted_at > seconds_ago(window)
    count, age = session.execute(
        select(
            func.count(),
            func.extract("epoch", func.now() - func.min(LoginAttempt.attempted_at)),
        ).where(which, recent)
    ).one()
    if count >= settings.login_max_failures * factor:
        raise TooManyAttempts(retry_after=max(1, int(window - float(age or 0))))


def request_password_reset(session: Session, settings: Settings, email: str) -> None:
    """Queue a reset link for the account with this email, if there is one.

    Says nothing either way, so the form cannot be used to learn who has an
    account. At most one link per `account_mail_rate` per account: asking
    again sooner quietly sends nothing.
    """
    user = find(session, email)
    if user is not None:
        _mail_holder(session, settings, user, "accounts.send_password_reset")


def end_sessions(session: Session, user: User) -> None:
    """Sign `user` out everywhere: every session cookie issued so far stops working."""
    session.execute(
        update(User)
        .where(User.id == user.id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def change_password(session: Session, user: User, password: str) -> None:
    """Set a new password from a reset link; old reset links and every signed-in session
    stop working. The link came by email, so an unconfirmed address is confirmed too."""
    confirm_address(session, user)
    user.password_hash = generate_password_hash(password)
    end_sessions(session, user)
    session.execute(delete(LoginAttempt).where(LoginAttempt.email == user.email))
