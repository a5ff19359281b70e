"""Staff accounts for the console: argon2 passwords, roles, database sessions, the audit log.

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, rehashed on login when those
change).  A login for an unknown user still runs one verification, so the answer takes as long as
for a known one; five wrong passwords in a row lock the account for fifteen minutes.

A session is a 192-bit random token in an HttpOnly cookie; the database keeps only its SHA-256
(like the confirmation links), so a copy of the database opens no session.  Sessions end after
``idle`` without a request and after ``absolute`` in any case, and on logout.

Roles are ordered: viewer < analyst < admin.  Viewers read; analysts acknowledge alerts, work
tickets, freeze accounts and retry dead letters; admins also unfreeze accounts and manage staff.
Every action is a row in ``vigil_staff_audit`` (:func:`audit`), written in the same transaction
as the action itself, so an action without its audit row cannot exist.

    StaffError          a person can act on the message (CLI exit code 2)

A refused sign-in is not an exception: :func:`authenticate` returns None after recording it, so
the failure count and the audit row are committed with the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.store.models import StaffAudit, StaffSession, StaffUser
from alerts.tokens import hash_token, new_token
from vigil.errors import VigilError

ROLES = ("viewer", "analyst", "admin")
RANK = {r: i for i, r in enumerate(ROLES)}
MAX_FAILED = 5
LOCK_FOR = timedelta(minutes=15)
MIN_PASSWORD = 12


class StaffError(VigilError):
    exit_code = 2


@dataclass(frozen=True)
class Staff:
    """The signed-in person, as the console's request handlers see them."""

    id: int
    username: str
    display_name: str
    role: str
    locale: str

    def can(self, role: str) -> bool:
        return RANK[self.role] >= RANK[role]

    @property
    def actor(self) -> str:
        """How timelines and the audit log name them."""
        return f"staff:{self.username}"


def _hasher() -> Any:
    from argon2 import PasswordHasher

    return PasswordHasher()


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(new_token()))
    return _DUMMY[0]


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise StaffError(f"the password must have at least {MIN_PASSWORD} characters")
    return str(_hasher().hash(password))


def check_role(role: str) -> str:
    if role not in ROLES:
        raise StaffError(f"unknown role {role!r}; use one of: {', '.join(ROLES)}")
    return role


def add_staff(session: Session, username: str, password: str | None, role: str, *, now: datetime,
              display_name: str = "", locale: str = "en", actor: str = "cli") -> StaffUser:
    """Create a staff account (``vigil staff add``); the audit log records who created it."""
    username = username.strip()
    if not username or len(username) > 128 or any(c.isspace() for c in username):
        raise StaffError(f"invalid user name {username!r}: 1 to 128 characters, no spaces")
    check_role(role)
    if session.scalars(select(StaffUser).where(StaffUser.username == username)).first() is not None:
        raise StaffError(f"staff user {username!r} already exists")
    user = StaffUser(username=username, display_name=display_name or username, role=role,
                     password_hash=hash_password(password) if password is not None else None,
                     locale=locale, active=True, failed_logins=0, created_at=now)
    session.add(user)
    session.flush()
    audit(session, actor=actor, role="", action="staff_add", target_kind="staff", target_id=username,
          detail={"role": role}, now=now)
    return user


def set_role(session: Session, username: str, role: str, *, now: datetime, actor: str, active: bool | None = None
             ) -> StaffUser:
    user = _user(session, username)
    before = {"role": user.role, "active": user.active}
    user.role = check_role(role)
    if active is not None:
        user.active = active
        if not active:
            revoke_all(session, user.id, now=now)
    audit(session, actor=actor, role="", action="staff_change", target_kind="staff", target_id=username,
          detail={"before": before, "after": {"role": user.role, "active": user.active}}, now=now)
    return user


def set_password(session: Session, username: str, password: str, *, now: datetime, actor: str) -> None:
    user = _user(session, username)
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    revoke_all(session, user.id, now=now)
    audit(session, actor=actor, role="", action="staff_password", target_kind="staff", target_id=username,
          detail={}, now=now)


def _user(session: Session, username: str) -> StaffUser:
    user = session.scalars(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None:
        raise StaffError(f"no staff user {username!r}")
    return user


def as_staff(u: StaffUser) -> Staff:
    return Staff(u.id, u.username, u.display_name or u.username, u.role, u.locale or "en")


def authenticate(session: Session, username: str, password: str, *, now: datetime, ip: str | None = None
                 ) -> Staff | None:
    """The staff member for these credentials, or None -- audited either way, and the failure
    counted, so the caller must commit the transaction in both cases (hence no exception)."""
    from argon2.exceptions import InvalidHashError, VerificationError

    user = session.scalars(select(StaffUser).where(StaffUser.username == username.strip())).first()
    ph = _hasher()
    locked = user is not None and user.locked_until is not None and _aware(user.locked_until) > now
    try:
        ph.verify(user.password_hash if user is not None and user.password_hash else _dummy_hash(), password)
        ok = user is not None and user.password_hash is not None
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or not user.active or locked:
        if user is not None and not locked:
            user.failed_logins += 1
            if user.failed_logins >= MAX_FAILED:
                user.locked_until = now + LOCK_FOR
                user.failed_logins = 0
        audit(session, actor=f"staff:{username.strip()[:100]}", role="", action="login_failed",
              target_kind="staff", target_id=username.strip()[:128],
              detail={"locked": bool(locked or (user is not None and user.locked_until
                                                 and _aware(user.locked_until) > now))}, now=now, ip=ip)
        return None
    if ph.check_needs_rehash(user.password_hash):
        user.password_hash = ph.hash(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
    staff = as_staff(user)
    audit(session, actor=staff.actor, role=staff.role, action="login", target_kind="staff",
          target_id=staff.username, detail={}, now=now, ip=ip)
    return staff


def open_session(session: Session, staff: Staff, *, now: datetime, absolute: timedelta) -> str:
    """A new session's token (for the cookie); only its hash is stored."""
    token = new_token()
    session.add(StaffSession(token_hash=hash_token(token), staff_id=staff.id, created_at=now, last_seen_at=now,
                             expires_at=now + absolute))
    return token


def session_staff(session: Session, token: str | None, *, now: datetime, idle: timedelta) -> Staff | None:
    """The staff member of a live session (touching it), else None."""
    if not token:
        return None
    row = session.get(StaffSession, hash_token(token))
    if row is None or row.revoked_at is not None or _aware(row.expires_at) <= now \
            or _aware(row.last_seen_at) + idle <= now:
        return None
    user = session.get(StaffUser, row.staff_id)
    if user is None or not user.active:
        return None
    if now - _aware(row.last_seen_at) > timedelta(seconds=30):  # one write a minute or so, not per request
        row.last_seen_at = now
    return as_staff(user)


def close_session(session: Session, token: str | None, *, now: datetime) -> None:
    if token:
        session.execute(update(StaffSession).where(StaffSession.token_hash == hash_token(token))
                        .values(revoked_at=now).execution_options(synchronize_session=False))


def revoke_all(session: Session, staff_id: int, *, now: datetime) -> None:
    session.execute(update(StaffSession).where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
                    .values(revoked_at=now).execution_options(synchronize_session=False))


def audit(session: Session, *, actor: str, role: str, action: str, target_kind: str = "", target_id: str = "",
          detail: dict[str, Any] | None = None, now: datetime, ip: str | None = None) -> None:
    """One audit row, in the caller's transaction."""
    session.add(StaffAudit(at=now, actor=actor[:128], role=role, action=action, target_kind=target_kind,
                           target_id=str(target_id)[:128], detail=detail or {}, ip=ip))


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt
