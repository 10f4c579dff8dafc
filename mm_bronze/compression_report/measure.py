"""Compression ratio and speed of gzip and zstd at several levels, and of zstd with a
dictionary trained on the sample, each payload compressed on its own as storage does."""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import zstandard

from mm_bronze.compression_report.progress import Progress
from mm_bronze.storage.compression import GZIP_LEVEL, ZSTD_LEVEL

MB = 1_000_000
LEVELS = (
    ("gzip", 1),
    ("gzip", 6),
    ("gzip", 9),
    ("zstd", 1),
    ("zstd", 3),
    ("zstd", 9),
    ("zstd", 19),
)
# The levels storage.compression uses: only these can be chosen.
SETTINGS = {("gzip", GZIP_LEVEL): "gzip", ("zstd", ZSTD_LEVEL): "zstd"}
DICTIONARY_SIZE = 112_640  # zstd's default dictionary size
DICTIONARY_FOLDS = 2
MIN_DICTIONARY_SAMPLES = 8  # per fold: fewer cannot train a dictionary worth measuring

Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


@dataclass
class Result:
    """One codec's totals over the sample."""

    codec: str  # none, gzip, zstd, zstd+dictionary
    level: int | None
    original: int
    compressed: int
    compress_seconds: float
    decompress_seconds: float
    setting: str | None  # the storage.compression value that gives this, if any

    @property
    def label(self) -> str:
        if self.codec == "zstd+dictionary":
            return f"zstd -{self.level} + dictionary"
        return self.codec if self.level is None else f"{self.codec} -{self.level}"

    @property
    def ratio(self) -> float:
        return self.original / self.compressed if self.compressed else 1.0

    @property
    def compress_mb_s(self) -> float | None:
        return self.original / MB / self.compress_seconds if self.compress_seconds else None

    @property
    def decompress_mb_s(self) -> float | None:
        return self.original / MB / self.decompress_seconds if self.decompress_seconds else None


def measure_all(payloads: Sequence[bytes]) -> tuple[list[Result], str]:
    """Every codec on ``payloads``; and a note on the dictionary (why it is absent, or how
    it was measured)."""
    progress = Progress(len(payloads) * (len(LEVELS) + 1))
    original = sum(len(p) for p in payloads)
    results = [Result("none", None, original, original, 0.0, 0.0, "none")]
    try:
        for codec, level in LEVELS:
            compress, decompress = _codec(codec, level)
            result = _measure(payloads, compress, decompress, progress, f"{codec} -{level}")
            results.append(
                Result(codec, level, original, *result, setting=SETTINGS.get((codec, level)))
            )
        dictionary, note = _measure_dictionary(payloads, progress)
        if dictionary is not None:
            results.append(dictionary)
    finally:
        progress.close()
    return results, note


def _codec(
    codec: str, level: int, dictionary: zstandard.ZstdCompressionDict | None = None
) -> Codec:
    if codec == "gzip":

        def gzip(data: bytes) -> bytes:
            # As storage writes it: a gzip container (wbits 31).
            compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
            return compressor.compress(data) + compressor.flush()

        return gzip, lambda data: zlib.decompress(data, 31)
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True, dict_data=dictionary)
    decompressor = zstandard.ZstdDecompressor(dict_data=dictionary)
    return compressor.compress, decompressor.decompress


def _measure(
    payloads: Sequence[bytes],
    compress: Callable[[bytes], bytes],
    decompress: Callable[[bytes], bytes],
    progress: Progress,
    label: str,
) -> tuple[int, float, float]:
    """Compressed size, compress seconds and decompress seconds over ``payloads``."""
    size = 0
    compress_seconds = decompress_seconds = 0.0
    for payload in payloads:
        start = time.perf_counter()
        packed = compress(payload)
        middle = time.perf_counter()
        unpacked = decompress(packed)
        end = time.perf_counter()
        if unpacked != payload:
            raise AssertionError(f"{label} did not round-trip")
        size += len(packed)
        compress_seconds += middle - start
        decompress_seconds += end - middle
        progress.advance(label=label)
    return size, compress_seconds, decompress_seconds


def _measure_dictionary(payloads: Sequence[bytes], progress: Progress) -> tuple[Result | None, str]:
    """zstd with a dictionary, measured on payloads it was not trained on: the sample is
    split in two halves; each half is compressed with the dictionary trained on the other."""
    label = f"zstd -{ZSTD_LEVEL} + dictionary"
    if len(payloads) < MIN_DICTIONARY_SAMPLES * DICTIONARY_FOLDS:
        progress.advance(len(payloads))
        return None, (
            f"no dictionary measured: {len(payloads)} objects are too few to train one "
            f"(at least {MIN_DICTIONARY_SAMPLES * DICTIONARY_FOLDS} needed)"
        )
    shuffled = list(payloads)
    random.Random(0).shuffle(shuffled)
    folds = [shuffled[i::DICTIONARY_FOLDS] for i in range(DICTIONARY_FOLDS)]
    size = 0
    compress_seconds = decompress_seconds = 0.0
    for i, measured in enumerate(folds):
        training: list[bytes | bytearray | memoryview] = [
            p for j, fold in enumerate(folds) if j != i for p in fold
        ]
        budget = max(1024, min(DICTIONARY_SIZE, sum(len(p) for p in training) // 10))
        try:
            dictionary = zstandard.train_dictionary(budget, training)
        except zstandard.ZstdError as exc:
            progress.advance(progress.total)
            return None, f"no dictionary measured: training failed ({exc})"
        compress, decompress = _codec("zstd", ZSTD_LEVEL, dictionary)
        fold_size, fold_c, fold_d = _measure(measured, compress, decompress, progress, label)
        size += fold_size + len(dictionary.as_bytes()) // DICTIONARY_FOLDS
        compress_seconds += fold_c
        decompress_seconds += fold_d
    original = sum(len(p) for p in payloads)
    note = (
        f"dictionary ({budget // 1024} KiB) measured on objects it was not trained on: each "
        "half of the sample compressed with the dictionary trained on the other half; "
        "its size is counted in the ratio"
    )
    result = Result(
        "zstd+dictionary", ZSTD_LEVEL, original, size, compress_seconds, decompress_seconds, None
    )
    return result, note
