"""The settings: loaded without error (see ``doctor_command``), and passing the checks the
roles make when they start, so that ``serve`` will not refuse them later."""

from __future__ import annotations

from mm_bronze.doctor.check import Check, failed, passed
from mm_bronze.errors import ConfigError
from mm_bronze.settings import Settings

FIX = "correct it in the configuration file or environment (see `mm-bronze config`)"


def check_settings(settings: Settings) -> Check:
    from mm_bronze.ingest.mllp.access import check_exposure
    from mm_bronze.ingest.sftp.door import check_sftp_settings
    from mm_bronze.storage import check_template

    try:
        check_template(settings.storage.path_template)
        check_sftp_settings(settings)
        check_exposure(settings.mllp)
    except ConfigError as exc:
        return failed("settings", str(exc), FIX)
    return passed("settings", f"valid (data directory {settings.data_path})")


def invalid_settings(error: ConfigError) -> Check:
    return failed("settings", str(error).replace("\n", "; "), FIX)
