"""Which ``storage.compression`` to set, from the measured results."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mm_bronze.compression_report.measure import Result

WORTHWHILE = 1.1  # below this ratio, compression costs CPU for little space
ZSTD_TOLERANCE = 0.97  # zstd is preferred unless gzip stores clearly less
DICTIONARY_GAIN = 1.15  # a dictionary worth mentioning saves this much more than zstd alone


@dataclass
class Recommendation:
    setting: str
    reason: str
    dictionary: str = ""  # what a dictionary would give, when it would matter


def recommend(results: Sequence[Result]) -> Recommendation:
    by_setting = {r.setting: r for r in results if r.setting}
    gzip, zstd = by_setting["gzip"], by_setting["zstd"]
    best = max(gzip.ratio, zstd.ratio)
    if best < WORTHWHILE:
        choice = Recommendation(
            "none",
            f"the sample hardly compresses (best ratio {best:.2f}: already compressed or random "
            "data?); compression would spend CPU for little space",
        )
    elif zstd.ratio >= gzip.ratio * ZSTD_TOLERANCE:
        choice = Recommendation(
            "zstd",
            f"ratio {zstd.ratio:.2f} against {gzip.ratio:.2f} for gzip, {_speed(zstd, gzip)}",
        )
    else:
        choice = Recommendation(
            "gzip",
            f"ratio {gzip.ratio:.2f} against {zstd.ratio:.2f} for zstd, {_speed(gzip, zstd)}",
        )
    dictionary = next((r for r in results if r.codec == "zstd+dictionary"), None)
    if dictionary is not None and dictionary.ratio >= zstd.ratio * DICTIONARY_GAIN:
        saved = 1 - zstd.ratio / dictionary.ratio
        choice.dictionary = (
            f"zstd with a dictionary trained on these payloads would reach ratio "
            f"{dictionary.ratio:.2f} ({saved:.0%} less space than zstd alone); "
            "storage.compression has no dictionary mode, so this is not available as a setting"
        )
    return choice


def _speed(chosen: Result, other: Result) -> str:
    mine, theirs = chosen.compress_mb_s or 0.0, other.compress_mb_s or 0.0
    if theirs and mine:
        return f"compressing at {mine:.0f} MB/s against {theirs:.0f} MB/s"
    return "at a similar speed"
