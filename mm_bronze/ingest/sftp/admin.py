"""``mm-bronze users ...``: manage SFTP users in the users file (no server needed).

Its arguments are defined with the other commands' in ``mm_bronze.cli.parser``.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from mm_bronze.errors import ConfigError
from mm_bronze.ingest.sftp.door import sftp_root, users_path
from mm_bronze.ingest.sftp.users import (
    SftpUser,
    check_username,
    hash_password,
    load_users_file,
    save_users_file,
)
from mm_bronze.settings import Settings


def users_command(args: argparse.Namespace, settings: Settings) -> int:
    path = users_path(settings)
    users = {u.name: u for u in load_users_file(path)}
    if args.action == "list":
        for user in users.values():
            auth = [m for m, on in (("password", user.password_hash), ("keys", user.keys)) if on]
            print(f"{user.name}\t{','.join(user.perms)}\t{'+'.join(auth) or 'no credentials'}")
        return 0
    name = check_username(args.name)
    if args.action == "remove":
        if users.pop(name, None) is None:
            print(f"no SFTP user {name!r}", file=sys.stderr)
            return 1
        save_users_file(path, list(users.values()))
        return 0
    user = users.get(name) or SftpUser(name=name)
    if args.action == "add":
        if args.perms is not None:
            user.perms = args.perms  # checked by the parser (``cli.parser.permissions``)
        password = _read_password(args)
        if password is not None:
            user.password_hash = hash_password(password)
        if args.key:
            user.keys.append(_read_public_key(Path(args.key)))
        users[name] = user
        save_users_file(path, list(users.values()))
        print(f"SFTP user {name!r} saved ({','.join(user.perms)})", file=sys.stderr)
        if not user.password_hash and not user.keys:
            print(
                f"warning: {name!r} has no password or key and cannot log in yet: give one with"
                f" `users add {name} --key FILE`, --password-stdin, or `users add-key {name}`",
                file=sys.stderr,
            )
        return 0
    if args.action == "add-key":
        out = Path(args.out) if args.out else sftp_root(settings) / "client_keys"
        private_path = _generate_key_pair(out, name)
        user.keys.append(Path(str(private_path) + ".pub").read_text().strip())
        users[name] = user
        save_users_file(path, list(users.values()))
        print(private_path)
        print(
            f"key pair for {name!r} written: hand the private key to the partner", file=sys.stderr
        )
        return 0
    raise AssertionError(args.action)


def _read_password(args: argparse.Namespace) -> str | None:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif not args.key and sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
    else:
        return None
    if not password:
        raise ConfigError("empty password")
    return password


def _read_public_key(path: Path) -> str:
    import asyncssh

    try:
        key = asyncssh.read_public_key(str(path))
    except (OSError, asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(f"cannot read public key {path}: {exc}") from exc
    return key.export_public_key().decode().strip()


def _generate_key_pair(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{name}_key"
    if private_path.exists():
        raise ConfigError(f"{private_path} already exists; remove it first")
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"{name}@mm-bronze")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    key.write_public_key(str(private_path) + ".pub")
    return private_path
