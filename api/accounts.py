"""Users, sign-in tokens and API keys in SQL (adapter).

- **Passwords** are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second recommended
  parameter set); a hash made with weaker parameters is replaced at the next good sign-in.
- **Tokens** are opaque random values (256 bits) a user gets by signing in; the database keeps only their
  SHA-256, an expiry and a revocation time. A fast hash is enough for a value nobody can guess: the slow
  hash protects low-entropy passwords from offline guessing, a random token has nothing to guess.
- **API keys** are for machine clients (a dashboard, the bench): ``cwk_<key id>_<secret>``, shown once
  at creation, stored as the key id and the secret's SHA-256. They carry their own role and do not
  expire; an admin revokes them.

A token is checked against the user on every request: a user disabled or given another role acts with
the new role at once. A crew user (and a crew key) belongs to exactly one crew; nobody else has a crew.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from api import Conflict, NotFound, Unprocessable
from api.db import connect, open_engine
from api.roles import Principal, Role

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
CREW_PATTERN: Final = re.compile(r"[^\x00-\x1f\x7f]{1,100}")  # the registry's crew column: 100, no controls
MIN_PASSWORD: Final = 12  # NIST SP 800-63B allows 8; operators' accounts command a city: 12
MAX_PASSWORD: Final = 1024
TOKEN_PREFIX: Final = "cwt_"  # noqa: S105 (marks a value as a token; the rest is random)
KEY_PREFIX: Final = "cwk_"
_EXPIRED_KEPT_MS: Final = 24 * 3_600_000  # expired tokens are purged a day later

metadata = sa.MetaData()
users_table = sa.Table(
    "api_users",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("crew", sa.String(100), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("updated_ms", sa.BigInteger, nullable=False),
)
tokens_table = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("user", sa.String(64), sa.ForeignKey("api_users.name"), nullable=False, index=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("expires_ms", sa.BigInteger, nullable=False, index=True),
    sa.Column("revoked_ms", sa.BigInteger),
)
keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(24), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("crew", sa.String(100), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("revoked_ms", sa.BigInteger),
)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    crew: str
    disabled: bool
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown to the client once; only its hash is kept
    user: User
    expires_ms: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    name: str
    role: Role
    crew: str
    created_ms: int
    created_by: str
    revoked_ms: int | None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(name: str, what: str = "name") -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise Unprocessable(
            f"{what} {name!r:.70} must be 1-64 of A-Z a-z 0-9 _ . @ -, starting with a letter or digit"
        )
    return name


def check_role_crew(role: Role, crew: str) -> str:
    """The crew a principal of ``role`` carries: required for crew, refused for the others."""
    if role is Role.CREW:
        if not CREW_PATTERN.fullmatch(crew):
            raise Unprocessable("a crew user or key needs its crew: 1-100 characters, as in the registry")
        return crew
    if crew:
        raise Unprocessable(f"only a crew user or key has a crew, not a {role.value}")
    return ""


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise Unprocessable(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    return password


def _user(row: Sequence[Any]) -> User:
    name, role, crew, disabled, created_ms, updated_ms = row
    return User(name, Role(role), crew, bool(disabled), created_ms, updated_ms)


def _key(m: Mapping[Any, Any]) -> ApiKey:
    return ApiKey(
        m["key_id"], m["name"], Role(m["role"]), m["crew"], m["created_ms"], m["created_by"], m["revoked_ms"]
    )


_USER_COLUMNS: Final = (
    users_table.c.name,
    users_table.c.role,
    users_table.c.crew,
    users_table.c.disabled,
    users_table.c.created_ms,
    users_table.c.updated_ms,
)


class AccountStore:
    """Users, tokens and keys of the API; a context manager that owns its engine."""

    def __init__(self, url: str, hasher: PasswordHasher | None = None) -> None:
        self._engine, self._where = open_engine(url)
        self._hasher = hasher or PasswordHasher()
        # Verified against when a name is unknown, so a wrong name costs as long as a wrong password.
        self._decoy = self._hasher.hash(secrets.token_urlsafe(16))
        with self._conn("create the tables", write=True) as conn:
            metadata.create_all(conn)

    def __enter__(self) -> AccountStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._engine.dispose()

    @property
    def engine(self) -> sa.Engine:
        return self._engine

    @property
    def where(self) -> str:
        """The database, as shown in messages (no password)."""
        return self._where

    def _conn(self, action: str, *, write: bool = False) -> AbstractContextManager[sa.Connection]:
        return connect(self._engine, self._where, action, write=write)

    def ping(self) -> None:
        with self._conn("answer") as conn:
            conn.execute(sa.select(1))

    # --- users ---

    def add_user(self, name: str, role: Role, crew: str, password: str, now_ms: int) -> User:
        check_name(name)
        crew = check_role_crew(role, crew)
        digest = self._hasher.hash(check_password(password))
        with self._conn("add a user", write=True) as conn:
            if conn.execute(sa.select(users_table.c.name).where(users_table.c.name == name)).first():
                raise Conflict(f"user {name} exists already")
            conn.execute(
                users_table.insert().values(
                    name=name,
                    role=role.value,
                    crew=crew,
                    password_hash=digest,
                    disabled=False,
                    created_ms=now_ms,
                    updated_ms=now_ms,
                )
            )
        return User(name, role, crew, False, now_ms, now_ms)

    def user(self, name: str) -> User:
        with self._conn("read a user") as conn:
            row = conn.execute(sa.select(*_USER_COLUMNS).where(users_table.c.name == name)).first()
        if row is None:
            raise NotFound(f"no user {name}")
        return _user(row)

    def users(self) -> list[User]:
        with self._conn("list users") as conn:
            return [_user(r) for r in conn.execute(sa.select(*_USER_COLUMNS).order_by(users_table.c.name))]

    def update_user(
        self,
        name: str,
        now_ms: int,
        *,
        role: Role | None = None,
        crew: str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Change what is given; a new password or disabling revokes the user's tokens."""
        current = self.user(name)
        new_role = role or current.role
        if crew is None:  # a crew user keeps its crew; a user leaving the crew role leaves its crew
            crew = current.crew if new_role is Role.CREW else ""
        new_crew = check_role_crew(new_role, crew)
        values: dict[str, object] = {"role": new_role.value, "crew": new_crew, "updated_ms": now_ms}
        if password is not None:
            values["password_hash"] = self._hasher.hash(check_password(password))
        if disabled is not None:
            values["disabled"] = disabled
        with self._conn("update a user", write=True) as conn:
            conn.execute(users_table.update().where(users_table.c.name == name).values(**values))
            if password is not None or disabled:
                self._revoke_user_tokens(conn, name, now_ms)
        return self.user(name)

    @staticmethod
    def _revoke_user_tokens(conn: sa.Connection, name: str, now_ms: int) -> None:
        t = tokens_table
        conn.execute(t.update().where(t.c.user == name, t.c.revoked_ms.is_(None)).values(revoked_ms=now_ms))

    # --- tokens ---

    def sign_in(self, name: str, password: str, now_ms: int, ttl_s: int) -> IssuedToken | None:
        """A new token for a good name and password of an enabled user; None otherwise (no reason given:
        whether the name exists is not the caller's business)."""
        with self._conn("read a user") as conn:
            row = conn.execute(
                sa.select(*_USER_COLUMNS, users_table.c.password_hash).where(users_table.c.name == name)
            ).first()
        stored = row.password_hash if row is not None else self._decoy
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        user = _user(row[:6])
        if user.disabled:
            return None
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires_ms = now_ms + ttl_s * 1000
        with self._conn("issue a token", write=True) as conn:
            if self._hasher.check_needs_rehash(stored):
                new_hash = self._hasher.hash(password)
                conn.execute(
                    users_table.update().where(users_table.c.name == name).values(password_hash=new_hash)
                )
            t = tokens_table
            conn.execute(t.delete().where(t.c.expires_ms < now_ms - _EXPIRED_KEPT_MS))
            conn.execute(
                t.insert().values(
                    token_hash=_sha256(token),
                    user=name,
                    created_ms=now_ms,
                    expires_ms=expires_ms,
                    revoked_ms=None,
                )
            )
        return IssuedToken(token, user, expires_ms)

    def principal_for_token(self, token: str, now_ms: int) -> Principal | None:
        t, u = tokens_table, users_table
        stmt = (
            sa.select(u.c.name, u.c.role, u.c.crew)
            .join(u, u.c.name == t.c.user)
            .where(
                t.c.token_hash == _sha256(token),
                t.c.revoked_ms.is_(None),
                t.c.expires_ms > now_ms,
                u.c.disabled.is_(False),
            )
        )
        with self._conn("check a token") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else Principal(row.name, Role(row.role), row.crew, "token")

    def revoke_token(self, token: str, now_ms: int) -> bool:
        t = tokens_table
        stmt = (
            t.update()
            .where(t.c.token_hash == _sha256(token), t.c.revoked_ms.is_(None))
            .values(revoked_ms=now_ms)
        )
        with self._conn("revoke a token", write=True) as conn:
            return conn.execute(stmt).rowcount > 0

    # --- API keys ---

    def create_key(
        self, name: str, role: Role, crew: str, created_by: str, now_ms: int
    ) -> tuple[str, ApiKey]:
        """A new key: the full key (shown once) and what is kept of it."""
        check_name(name, "key name")
        crew = check_role_crew(role, crew)
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(key_id, name, role, crew, now_ms, created_by, None)
        with self._conn("create an API key", write=True) as conn:
            if conn.execute(sa.select(keys_table.c.key_id).where(keys_table.c.name == name)).first():
                raise Conflict(f"an API key named {name} exists already")
            conn.execute(
                keys_table.insert().values(
                    key_id=key_id,
                    name=name,
                    role=role.value,
                    crew=crew,
                    secret_hash=_sha256(secret),
                    created_ms=now_ms,
                    created_by=created_by,
                    revoked_ms=None,
                )
            )
        return f"{KEY_PREFIX}{key_id}_{secret}", key

    def principal_for_key(self, full_key: str) -> Principal | None:
        if not full_key.startswith(KEY_PREFIX):
            return None
        key_id, _, secret = full_key[len(KEY_PREFIX) :].partition("_")
        if not key_id or not secret:
            return None
        k = keys_table
        stmt = sa.select(k.c.name, k.c.role, k.c.crew, k.c.secret_hash).where(
            k.c.key_id == key_id, k.c.revoked_ms.is_(None)
        )
        with self._conn("check an API key") as conn:
            row = conn.execute(stmt).first()
        if row is None or not hmac.compare_digest(row.secret_hash, _sha256(secret)):
            return None
        return Principal(row.name, Role(row.role), row.crew, "key")

    def api_keys(self) -> list[ApiKey]:
        with self._conn("list API keys") as conn:
            return [_key(r._mapping) for r in conn.execute(sa.select(keys_table).order_by(keys_table.c.name))]

    def revoke_key(self, key_id: str, now_ms: int) -> ApiKey:
        k = keys_table
        with self._conn("revoke an API key", write=True) as conn:
            row = conn.execute(sa.select(k).where(k.c.key_id == key_id)).first()
            if row is None:
                raise NotFound(f"no API key {key_id}")
            if row.revoked_ms is None:
                conn.execute(k.update().where(k.c.key_id == key_id).values(revoked_ms=now_ms))
        return _key({**row._mapping, "revoked_ms": row.revoked_ms or now_ms})
