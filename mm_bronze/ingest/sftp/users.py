"""SFTP users: names, scrypt-hashed passwords, public keys and permissions.

Users live in a JSON file (``<data_dir>/sftp/users.json`` unless ``sftp.users_file`` is
set) that ``mm-bronze users ...`` edits and the server re-reads when it changes. The
original ``SFTP_USERS=user:pass:perm+perm|...`` variable is still accepted: its passwords
are hashed at load and never kept in plain text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import structlog

from mm_bronze.errors import ConfigError

log = structlog.get_logger(__name__)

PERMISSIONS = ("read", "write", "delete")
DEFAULT_PERMISSIONS = ("read", "write")
USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$")

# scrypt: memory-hard, in the standard library. n=2**14, r=8 uses 16 MiB per check.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_MAXMEM = 64 * 1024 * 1024


class SftpUser(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    password_hash: str | None = None
    keys: list[str] = msgspec.field(default_factory=list)
    perms: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_PERMISSIONS))

    def can(self, permission: str) -> bool:
        return permission in self.perms


class _UsersFile(msgspec.Struct, forbid_unknown_fields=True):
    users: list[SftpUser] = msgspec.field(default_factory=list)


def hash_password(password: str) -> str:
    """A self-describing scrypt hash: ``scrypt$n$r$p$salt$hash`` (base64 parts)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, maxmem=_MAXMEM
    )
    return "$".join(
        ["scrypt", str(_SCRYPT_N), str(_SCRYPT_R), str(_SCRYPT_P), _b64(salt), _b64(digest)]
    )


def verify_password(password: str, encoded: str | None) -> bool:
    """True when ``password`` matches ``encoded``; a missing hash still costs one scrypt."""
    try:
        scheme, n, r, p, salt, digest = (encoded or "").split("$")
        params = (int(n), int(r), int(p))
        salt_b, digest_b = _unb64(salt), _unb64(digest)
    except ValueError:
        scheme, params, salt_b, digest_b = "", (_SCRYPT_N, _SCRYPT_R, _SCRYPT_P), b"", b""
    candidate = hashlib.scrypt(
        password.encode(),
        salt=salt_b or b"0" * 16,
        n=params[0],
        r=params[1],
        p=params[2],
        maxmem=_MAXMEM,
    )
    return scheme == "scrypt" and bool(digest_b) and hmac.compare_digest(candidate, digest_b)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


def parse_perms(text: str) -> list[str]:
    """``read,write`` or ``read+write`` → a checked list; raises ``ConfigError``."""
    perms = [p.strip().lower() for p in re.split(r"[,+]", text) if p.strip()]
    unknown = sorted(set(perms) - set(PERMISSIONS))
    if unknown:
        raise ConfigError(f"unknown permission(s) {unknown}; known: {', '.join(PERMISSIONS)}")
    return [p for p in PERMISSIONS if p in perms]


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise ConfigError(
            f"invalid SFTP user name {name!r}: use 1-64 letters, digits, '.', '_' or '-'"
        )
    return name


def parse_legacy_users(text: str) -> list[SftpUser]:
    """Parse the original ``SFTP_USERS`` value; passwords are hashed here."""
    users = []
    for entry in filter(None, (e.strip() for e in text.split("|"))):
        head, sep, perms = entry.rpartition(":")
        name, sep2, password = head.partition(":")
        if not sep or not sep2:
            raise ConfigError("invalid sftp.users (SFTP_USERS): expected user:password:perms|...")
        users.append(
            SftpUser(
                name=check_username(name),
                password_hash=hash_password(password),
                perms=parse_perms(perms),
            )
        )
    return users


def load_users_file(path: Path) -> list[SftpUser]:
    if not path.exists():
        return []
    try:
        return msgspec.json.decode(path.read_bytes(), type=_UsersFile).users
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise ConfigError(f"SFTP users file {path} is invalid: {exc}") from exc


def save_users_file(path: Path, users: list[SftpUser]) -> None:
    """Write atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    data = msgspec.json.format(msgspec.json.encode(_UsersFile(users=users)))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class UserStore:
    """The users the server accepts: the users file (re-read on change) plus ``SFTP_USERS``."""

    path: Path
    legacy: str = ""
    _users: dict[str, SftpUser] = field(default_factory=dict)
    _legacy_users: list[SftpUser] = field(default_factory=list)
    _stamp: tuple[int, int] | None = None

    def load(self) -> None:
        """Read everything now; raises ``ConfigError`` for a bad file or ``SFTP_USERS``."""
        if self.legacy:
            self._legacy_users = parse_legacy_users(self.legacy)
            log.warning(
                "SFTP_USERS holds plain-text passwords; they were hashed in memory. "
                "Move these users to `mm-bronze users add` and unset SFTP_USERS",
                users=[u.name for u in self._legacy_users],
            )
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if not force and stamp == self._stamp:
            return
        users = {u.name: u for u in self._legacy_users}
        for user in load_users_file(self.path):
            if not USERNAME.match(user.name):
                log.error("invalid SFTP user name in the users file, ignored", user=user.name)
                continue
            users[user.name] = user  # the file wins over SFTP_USERS
        self._users, self._stamp = users, stamp

    def get(self, name: str) -> SftpUser | None:
        try:
            self._reload()
        except ConfigError as exc:
            log.error("SFTP users file unreadable, keeping the previous users", error=str(exc))
        return self._users.get(name)

    def names(self) -> list[str]:
        self._reload()
        return sorted(self._users)
