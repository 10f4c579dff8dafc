"""``mm-bronze users``: hashed passwords, keys, permissions; the original SFTP_USERS."""

from __future__ import annotations

import json
from pathlib import Path

import asyncssh
import pytest

from mm_bronze.cli import main
from tests.ingest.sftp.helpers import landed, openssh_sftp, wait_landed
from tests.polling import wait_listening
from tests.services.mm_bronze import MmBronze, run_cli


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the real command line in this process (faster than a subprocess per command)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_users_add_list_remove_and_add_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(tmp_path)]
    added = run_cli(
        "users", "add", "lab1", "--password-stdin", "--perms", "write,read", *data,
        input=b"s3cret-Passw0rd\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    stored = (tmp_path / "sftp" / "users.json").read_text()
    assert "s3cret-Passw0rd" not in stored
    (user,) = json.loads(stored)["users"]
    assert user["password_hash"].startswith("scrypt$")
    assert user["perms"] == ["read", "write"]
    assert (tmp_path / "sftp" / "users.json").stat().st_mode & 0o077 == 0

    code, out, _ = cli(capsys, "users", "add-key", "lab1", *data)
    assert code == 0
    private = Path(out.strip())
    assert private.exists() and private.stat().st_mode & 0o077 == 0
    pub = Path(str(private) + ".pub").read_text().strip()
    (user,) = json.loads((tmp_path / "sftp" / "users.json").read_text())["users"]
    assert user["keys"] == [pub]

    other = tmp_path / "other.pub"
    other.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_public_key())
    assert cli(capsys, "users", "add", "lab2", "--key", str(other), *data)[0] == 0
    code, out, _ = cli(capsys, "users", "list", *data)
    assert code == 0
    assert sorted(out.splitlines()) == ["lab1\tread,write\tpassword+keys", "lab2\tread,write\tkeys"]

    with pytest.raises(SystemExit) as refused:  # a usage error, as argparse gives it
        cli(capsys, "users", "add", "lab3", "--perms", "read,admin", *data)
    assert refused.value.code == 2 and "unknown permission" in capsys.readouterr().err
    code, _, err = cli(capsys, "users", "add", "lab4", "--perms", "read", *data)
    assert code == 0 and "warning: 'lab4' has no password or key and cannot log in yet" in err
    assert "cannot log in" not in cli(capsys, "users", "add", "lab1", "--perms", "read", *data)[2]
    assert cli(capsys, "users", "remove", "lab4", *data)[0] == 0
    assert cli(capsys, "users", "add", "lab1", "--perms", "read,write", *data)[0] == 0
    assert cli(capsys, "users", "remove", "lab2", *data)[0] == 0
    assert cli(capsys, "users", "remove", "lab2", *data)[0] == 1
    code, out, _ = cli(capsys, "users", "list", *data)
    assert out.splitlines() == ["lab1\tread,write\tpassword+keys"]


async def test_original_sftp_users_variable_and_cli_users_work_together(
    tmp_path_factory: pytest.TempPathFactory, dsn: str, corpus: Path
) -> None:
    data_dir = tmp_path_factory.mktemp("sftp-users")
    keyed = run_cli("users", "add-key", "partner", "--data-dir", str(data_dir))
    assert keyed.returncode == 0, keyed.stderr
    key = Path(keyed.stdout.strip())
    env = {"POSTGRES_DSN": dsn, "SFTP_USERS": "legacy:old-pass:read+write|ro:pw2:read"}
    with MmBronze(data_dir, "--sftp", "--consumers", env=env) as proc:
        wait_listening(proc.sftp_port, timeout=60)
        assert "SFTP_USERS holds plain-text passwords" in proc.logs()
        assert "old-pass" not in proc.logs()
        source = corpus / "hl7v2" / "sample_win.hl7"
        async with (
            asyncssh.connect(
                "127.0.0.1",
                proc.sftp_port,
                username="legacy",
                password="old-pass",
                known_hosts=None,
                client_keys=None,
                agent_path=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            await sftp.put(str(source), "/from-legacy.hl7")
        async with (
            asyncssh.connect(
                "127.0.0.1",
                proc.sftp_port,
                username="ro",
                password="pw2",
                known_hosts=None,
                client_keys=None,
                agent_path=None,
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            with pytest.raises(asyncssh.SFTPPermissionDenied):
                await sftp.put(str(source), "/nope.hl7")
        result = openssh_sftp(
            proc.sftp_port, "partner", key, [f"put {source} /from-key.hl7"], data_dir
        )
        assert result.returncode == 0, result.stderr
        (row,) = wait_landed(dsn, "legacy", 1)
        assert row["source_metadata"]["file_name"] == "from-legacy.hl7"
        (row,) = wait_landed(dsn, "partner", 1)
        assert row["source_metadata"]["file_name"] == "from-key.hl7"
        assert landed(dsn, "ro") == []
