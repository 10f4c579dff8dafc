"""An object store rooted at one fsspec URL: immutable objects, written atomically.

Local filesystems get a synced file that is named only once complete (``storage.local``).
Object stores (S3, GCS, Azure Blob) get a single PUT or a multipart upload that is completed
only after the last chunk, so an object appears whole or not at all; an interrupted upload is
discarded. Large objects are streamed in bounded chunks, never held whole in memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import fsspec
import structlog
from fsspec.implementations.local import LocalFileSystem

from mm_bronze.errors import ConfigError, StorageUnavailable
from mm_bronze.storage import local
from mm_bronze.storage.compression import Codec, codec_for, decode
from mm_bronze.storage.local import (
    fsync_directories,
    link_new,
    make_directories,
    write_many_new,
    write_new,
)
from mm_bronze.storage.local import fsync_directory as fsync_directory  # for other modules

log = structlog.get_logger(__name__)

COPY_CHUNK = 4 * 1024 * 1024
# Upload part size for object stores: S3 needs at least 5 MiB, GCS a multiple of 256 KiB.
WRITE_BLOCK = 8 * 1024 * 1024
# URL schemes of object stores (s3fs, gcsfs, adlfs): no directories, atomic whole-object PUTs.
OBJECT_STORE_SCHEMES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
# S3 refuses a PUT with ``If-None-Match: *`` when the object exists: write-unless-exists in
# one request instead of a HEAD then a PUT.
CONDITIONAL_PUT_SCHEMES = frozenset({"s3", "s3a"})
# Blocking storage calls run on the store's own threads, enough for the consumers' concurrent
# writes of a batch (fsyncs and object-store requests wait on I/O, not on the CPU).
IO_THREADS = 16
# Errors that retrying cannot fix: configuration or programming errors.
_PERMANENT = (TypeError, ValueError, AttributeError, NotImplementedError, AssertionError)


def is_transient(exc: BaseException) -> bool:
    """Whether a backend error may go away on retry (network, outage, throttling, auth)."""
    return isinstance(exc, Exception) and not isinstance(
        exc, (FileNotFoundError, *_PERMANENT, StorageUnavailable)
    )


def is_write_outage(exc: BaseException) -> bool:
    """Whether an error writing a *new* object may go away on retry: a transient one, or a
    place to write that is not there (an S3 or GCS bucket not created yet, or deleted, says
    "not found"; nothing was being read)."""
    return is_transient(exc) or isinstance(exc, FileNotFoundError)


def unavailable(what: str, exc: BaseException) -> StorageUnavailable:
    detail = str(exc).splitlines()[0][:200] if str(exc) else ""
    return StorageUnavailable(f"{what}: {type(exc).__name__}" + (f": {detail}" if detail else ""))


_Work = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


class IoThreads(concurrent.futures.Executor):
    """Up to ``size`` daemon threads for blocking storage calls.

    A call to a store that stops answering (a frozen server, a lost connection that sends no
    reset) can block its thread for as long as the store is gone, whatever deadline the caller
    gave up at. ``ThreadPoolExecutor`` joins its threads when the interpreter exits, so one
    such call would hold a stopping process until the store came back: these threads are not
    waited for. Nothing is lost by that: a call nobody awaits any longer acknowledges nothing.
    """

    def __init__(self, size: int, name: str) -> None:
        self._size = size
        self._name = name
        self._work: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._work.put((future, functools.partial(fn, *args, **kwargs)))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._worker, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)
        return future

    def _worker(self) -> None:
        while (item := self._work.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:
                    future.set_exception(exc)
            del item, future, call  # no reference kept while idle
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


class ObjectStore:
    """Objects under the root of ``url``; every method runs blocking I/O off the event loop.

    ``options`` are the fsspec storage options (endpoint, credentials, region...).
    ``compression`` (``none``, ``gzip``, ``zstd``) applies to objects written by
    ``put_bytes`` and ``put_from``; keys are given with their suffix already (see
    ``StorageRegistry.object_key``). Errors from the backend are raised as
    ``StorageUnavailable`` (retryable), except ``FileNotFoundError`` for an object that
    does not exist.
    """

    def __init__(
        self,
        url: str,
        options: dict[str, Any] | None = None,
        *,
        compression: str = "none",
        call_timeout: float | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        # How long one call to a remote staging store may wait: a door's (``StagedBlob``),
        # the SFTP spool's replay; None: no limit. See ``deadline``.
        self.call_timeout = call_timeout
        self.scheme = fsspec.core.split_protocol(self.url)[0] or "file"
        self.is_object_store = self.scheme in OBJECT_STORE_SCHEMES
        self.codec: Codec = codec_for(compression)
        self._options = dict(options or {})
        if self.scheme in ("gs", "gcs") and "endpoint_url" in self._options:
            # gcsfs would probe a custom endpoint (an emulator, a gateway) over gRPC for
            # zonal/hierarchical bucket features, and wait a minute per bucket for an answer.
            os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        if self.is_object_store:
            # Listings cached by one process would make exists() stale once another
            # process (or a lifecycle rule) changes the bucket.
            self._options.setdefault("use_listings_cache", False)
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""
        self._threads: IoThreads | None = None
        self._fanout: IoThreads | None = None  # the writes of one put_many_bytes

    async def open(self) -> None:
        if self._fs is not None:
            return
        try:
            fs, root = await asyncio.to_thread(fsspec.core.url_to_fs, self.url, **self._options)
        except (ImportError, TypeError, ValueError) as exc:
            raise ConfigError(
                f"invalid setting: cannot use storage {self.url} with storage.options: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        except Exception as exc:
            if is_transient(exc):
                raise unavailable(f"cannot open storage {self.url}", exc) from exc
            raise
        self._fs, self._root = fs, root.rstrip("/")
        self._threads = IoThreads(IO_THREADS, "storage")
        self._fanout = IoThreads(IO_THREADS, "storage-batch")
        if self.is_local:
            await asyncio.to_thread(make_directories, self._root)

    async def close(self) -> None:
        self._fs = None
        for threads in (self._threads, self._fanout):
            if threads is not None:
                threads.shutdown(wait=False)  # calls in flight finish on their threads
        self._threads = self._fanout = None

    async def __aenter__(self) -> ObjectStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        if self._fs is None:
            raise RuntimeError("ObjectStore is not open")
        return self._fs

    @property
    def is_local(self) -> bool:
        return isinstance(self._fs, LocalFileSystem)

    @property
    def deadline(self) -> float | None:
        """Seconds a bounded call waits for an answer: ``call_timeout`` on a remote store;
        None (no limit) on a local disk, where an fsync takes as long as the data is large."""
        return None if self.is_local else self.call_timeout

    def path(self, key: str) -> str:
        return f"{self._root}/{key.lstrip('/')}"

    def url_for(self, key: str) -> str:
        """The full URL of ``key``, as recorded in metadata."""
        return f"{self.url}/{key.lstrip('/')}"

    def key_for(self, url: str) -> str:
        """The key of an object given its full URL under this store."""
        prefix = self.url + "/"
        if not url.startswith(prefix):
            raise ValueError("URL is not under this store")
        return url[len(prefix) :]

    async def exists(self, key: str, *, timeout: float | None = None) -> bool:
        """Whether ``key`` exists; ``StorageUnavailable`` when the store fails, or gives no
        answer within ``timeout`` seconds (None: no limit)."""
        return await self._run(
            self.fs.exists, self.path(key), what="cannot check an object", timeout=timeout
        )

    async def ping(self) -> None:
        """Raise ``StorageUnavailable`` unless the root (for object stores: the bucket or
        container) can be reached with the configured credentials."""
        await self._run(self._ping)

    async def put_bytes(self, key: str, data: bytes, *, sync_directory: bool = True) -> bool:
        """Write ``data`` (compressed by the store's codec) at ``key`` atomically unless it
        exists; True when written.

        With ``sync_directory=False`` a local object's directory entry is not yet durable:
        the caller makes it so with ``sync_directories`` (once for many objects) before it
        relies on the object."""
        return await self._run(self._put_bytes, self.path(key), data, sync_directory)

    async def put_many_bytes(
        self, items: Sequence[tuple[str, bytes]], *, sync_directory: bool = True
    ) -> list[bool]:
        """``put_bytes`` for every (key, data), concurrently on the store's threads, with one
        hand-off from the event loop for all of them. Returns once every write has ended;
        raises the first error (``StorageUnavailable`` for a transient one)."""
        paths = [(self.path(key), data) for key, data in items]
        return await self._run(self._put_many, paths, sync_directory)

    async def put_from(
        self, key: str, source: ObjectStore, source_key: str, *, sync_directory: bool = True
    ) -> bool:
        """Stream ``source_key`` from ``source`` (compressed by this store's codec) to
        ``key`` atomically unless it exists; True when written. Raises
        ``FileNotFoundError`` when the source object does not exist. ``sync_directory`` as
        for ``put_bytes``."""
        return await self._run(
            self._put_from, self.path(key), source, source.path(source_key), sync_directory
        )

    async def sync_directories(self, keys: Iterable[str]) -> None:
        """Make the directory entries of local objects written with ``sync_directory=False``
        durable: one fsync per distinct directory. Nothing to do for other stores."""
        if not self.is_local:
            return
        directories = sorted({os.path.dirname(self.path(key)) for key in keys})
        if directories:
            await self._run(fsync_directories, directories)

    async def read_bytes(self, key: str) -> bytes:
        """The stored bytes of ``key`` (compressed when the object was)."""
        return await self._run(self.fs.cat_file, self.path(key))

    async def stream_original(self, key: str, compression: str) -> AsyncGenerator[bytes, None]:
        """The original bytes of ``key``, stored with ``compression``, in bounded chunks read
        on the store's threads. ``FileNotFoundError`` comes with the first chunk."""
        chunks = decode(compression, self._read_chunks(self.path(key)))
        try:
            while (chunk := await self._run(next, chunks, None)) is not None:
                if chunk:
                    yield chunk
        finally:
            await self._run(chunks.close)  # closes the file, also when the reader stops early

    async def remove(self, key: str, *, timeout: float | None = None) -> None:
        """Remove ``key``; a missing object is not an error. ``StorageUnavailable`` as for
        ``exists``; a removal given up at ``timeout`` goes on on its thread."""
        await self._run(self.remove_blocking, key, what="cannot remove an object", timeout=timeout)

    def remove_blocking(self, key: str) -> None:
        """``remove``, blocking."""
        try:
            self.fs.rm_file(self.path(key))
        except FileNotFoundError:
            pass

    def open_upload(self, key: str) -> IO[bytes]:
        """A file to stream a new object into (blocking); ``close`` publishes it, and
        ``discard_upload`` drops it. Local files are written in place."""
        path = self.path(key)
        if self.is_local:
            make_directories(os.path.dirname(path))
            return open(path, "wb")
        fs: Any = self.fs
        if self.is_object_store:
            return fs.open(path, "wb", block_size=WRITE_BLOCK)
        fs.makedirs(fs._parent(path), exist_ok=True)
        return fs.open(path, "wb")

    async def call(
        self, what: str, fn: Callable[..., Any], *args: Any, timeout: float | None = None
    ) -> Any:
        """``fn(*args)`` on the store's threads, its errors as they are; ``StorageUnavailable``
        once ``timeout`` seconds passed without an answer (``what`` failed: says which call).
        The call itself goes on, on its thread, until the backend answers or fails."""
        if self._threads is None:
            raise RuntimeError("ObjectStore is not open")
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        running = asyncio.get_running_loop().run_in_executor(self._threads, call)
        if timeout is None:
            return await running
        try:
            return await asyncio.wait_for(running, timeout)
        except TimeoutError:
            if running.cancelled():  # the deadline, not the call, raised
                raise StorageUnavailable(
                    f"{what}: {self.url} did not answer within {timeout:g} seconds"
                ) from None
            raise

    def call_later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the store's threads without waiting for it (cleanup when the
        store answers again); its errors are logged."""
        if self._threads is None:
            return
        future = self._threads.submit(contextvars.copy_context().run, fn, *args)
        future.add_done_callback(_log_failure)

    async def _run(
        self, fn: Any, *args: Any, what: str = "storage call", timeout: float | None = None
    ) -> Any:
        try:
            return await self.call(what, fn, *args, timeout=timeout)
        except BaseException as exc:
            if is_transient(exc):
                raise unavailable(f"storage error at {self.url}", exc) from exc
            raise

    # -- blocking implementations -------------------------------------------------------

    def _ping(self) -> None:
        if self.is_local:
            os.stat(self._root)
        elif self.is_object_store:
            bucket = self._root.split("/", 1)[0]
            try:
                self.fs.info(bucket)
            except FileNotFoundError as exc:
                raise StorageUnavailable(f"bucket {bucket!r} of {self.url} not found") from exc
        else:
            self.fs.ls(self._root, detail=False)

    def _put_bytes(self, path: str, data: bytes, sync_directory: bool = True) -> bool:
        if self.is_local:
            if os.path.exists(path):
                return False
            return write_new(path, iter((self.codec.encode_bytes(data),)), sync_directory)
        try:
            return self._put_remote(path, data)
        except FileNotFoundError as exc:  # nothing was read: what is missing is the bucket
            raise self._missing_destination(exc) from exc

    def _put_remote(self, path: str, data: bytes) -> bool:
        if self.scheme in CONDITIONAL_PUT_SCHEMES:
            try:
                self.fs.pipe_file(path, self.codec.encode_bytes(data), IfNoneMatch="*")
            except FileExistsError:
                return False
            return True
        if self.fs.exists(path):
            return False
        data = self.codec.encode_bytes(data)
        if not self.is_object_store:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        self.fs.pipe_file(path, data)  # one request: the object appears whole or not at all
        return True

    def _put_many(self, items: list[tuple[str, bytes]], sync_directory: bool) -> list[bool]:
        if self.is_local and local.SYNCS_TOGETHER:
            return self._put_many_local(items, sync_directory)
        outcomes = self._spread(lambda item: self._put_bytes(item[0], item[1], False), items)
        written = []
        for outcome in outcomes:  # every write has ended before anything is raised
            if isinstance(outcome, BaseException):
                raise outcome
            written.append(outcome)
        if sync_directory and self.is_local:
            fsync_directories(sorted({os.path.dirname(path) for path, _ in items}))
        return written

    def _put_many_local(self, items: list[tuple[str, bytes]], sync_directory: bool) -> list[bool]:
        def fresh(item: tuple[str, bytes]) -> bytes | None:
            path, data = item
            return None if os.path.exists(path) else self.codec.encode_bytes(data)

        encoded = self._spread(fresh, items)
        for outcome in encoded:
            if isinstance(outcome, BaseException):
                raise outcome
        new = [n for n, data in enumerate(encoded) if data is not None]
        outcomes = write_many_new(
            self._root, [(items[n][0], encoded[n]) for n in new], spread=self._spread
        )
        written = [False] * len(items)
        for n, outcome in zip(new, outcomes, strict=True):
            written[n] = outcome
        if sync_directory:
            fsync_directories(sorted({os.path.dirname(path) for path, _ in items}))
        return written

    def _spread(self, call: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``call(item)`` for every item on the store's batch threads (a ``local.Spread``):
        each result, or the exception it raised, in order, once every call has ended."""
        if self._fanout is None:
            raise RuntimeError("ObjectStore is not open")
        # One task per thread, not per object: a future costs its own lock, condition and
        # wakeup, several times the CPU of a small local write's Python side.
        chunks = [items[n::IO_THREADS] for n in range(min(IO_THREADS, len(items)))]
        futures = [self._fanout.submit(local.serially, call, chunk) for chunk in chunks]
        concurrent.futures.wait(futures)
        outcomes: list[Any] = [None] * len(items)
        for n, future in enumerate(futures):
            outcomes[n::IO_THREADS] = future.result()
        return outcomes

    def _put_from(
        self, path: str, source: ObjectStore, source_path: str, sync_directory: bool = True
    ) -> bool:
        try:
            return self._copy_from(path, source, source_path, sync_directory)
        except FileNotFoundError as exc:
            if self.is_local or not source.fs.exists(source_path):
                raise  # the source is missing (a staged blob gone): no retry brings it back
            raise self._missing_destination(exc) from exc

    def _missing_destination(self, exc: FileNotFoundError) -> StorageUnavailable:
        """A write to an object store found no bucket or container: an outage of this store
        (retried until someone creates it), not a missing object."""
        return unavailable(f"storage {self.url}: its bucket or container was not found", exc)

    def _copy_from(
        self, path: str, source: ObjectStore, source_path: str, sync_directory: bool
    ) -> bool:
        if self.fs.exists(path):
            return False
        if self.is_local:
            if (
                source.is_local
                and self.codec.name == "none"
                and link_new(source_path, path, sync_directory)
            ):
                return True
            chunks = self.codec.encode(source._read_chunks(source_path))
            return write_new(path, chunks, sync_directory)
        if self.codec.name == "none" and source.fs is self.fs:
            try:
                self.fs.copy(source_path, path)  # server-side copy, atomic
                return True
            except NotImplementedError:
                pass
        self._stream_write(path, self.codec.encode(source._read_chunks(source_path)))
        return True

    def _read_chunks(self, path: str) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {}
        size = COPY_CHUNK
        if self.is_object_store:
            # One ranged GET per part-sized read, and no read-ahead buffer on top of it.
            size = WRITE_BLOCK
            kwargs = {"block_size": size, "cache_type": "none"}
        with self.fs.open(path, "rb", **kwargs) as src:
            while chunk := src.read(size):
                yield chunk

    def _stream_write(self, path: str, chunks: Iterable[bytes]) -> None:
        """Upload ``chunks`` in parts; the object is published only by the final close."""
        key = path.removeprefix(self._root + "/")
        upload = self.open_upload(key)
        try:
            for chunk in chunks:
                upload.write(chunk)
            upload.close()
        except BaseException:
            discard_upload(upload)
            raise


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    if not future.cancelled() and (exc := future.exception()) is not None:
        log.warning("storage cleanup failed", error=type(exc).__name__)


def discard_upload(upload: IO[bytes]) -> None:
    """Drop an unfinished upload so that nothing is published, not even on garbage
    collection (fsspec files publish what they hold when they are closed)."""
    discard = getattr(upload, "discard", None)
    if not callable(discard):  # a plain local file: the caller removes it
        upload.close()
        return
    try:
        discard()
    except Exception as exc:  # the backend expires unfinished uploads by itself
        log.warning("unfinished upload not discarded", error=type(exc).__name__)
    finally:
        with contextlib.suppress(AttributeError):
            upload.closed = True  # type: ignore[misc]
