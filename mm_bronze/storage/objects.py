"""An object store rooted at one fsspec URL: immutable objects, written atomically."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from mm_bronze.errors import StorageUnavailable

COPY_CHUNK = 4 * 1024 * 1024


class ObjectStore:
    """Objects under the root of ``url``; every method runs blocking I/O off the event loop.

    Errors from the backend are raised as ``StorageUnavailable`` (retryable), except
    ``FileNotFoundError`` for an object that does not exist.
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self._options = dict(options or {})
        self._fs: fsspec.AbstractFileSystem | None = None
        self._root = ""

    async def open(self) -> None:
        if self._fs is not None:
            return
        fs, root = await asyncio.to_thread(fsspec.core.url_to_fs, self.url, **self._options)
        self._fs, self._root = fs, root.rstrip("/")
        if self.is_local:
            await asyncio.to_thread(os.makedirs, self._root, exist_ok=True)

    async def close(self) -> None:
        self._fs = None

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

    async def exists(self, key: str) -> bool:
        return await self._run(self.fs.exists, self.path(key))

    async def ping(self) -> None:
        """Raise ``StorageUnavailable`` when the root cannot be listed."""
        if self.is_local:
            await self._run(os.stat, self._root)
        else:
            await self._run(self.fs.ls, self._root, detail=False)

    async def put_bytes(self, key: str, data: bytes) -> bool:
        """Write ``data`` at ``key`` atomically unless it exists; True when written."""
        return await self._run(self._put_bytes, self.path(key), data)

    async def put_from(self, key: str, source: ObjectStore, source_key: str) -> bool:
        """Copy ``source_key`` from ``source`` to ``key`` atomically unless it exists."""
        return await self._run(self._put_from, self.path(key), source, source.path(source_key))

    async def read_bytes(self, key: str) -> bytes:
        return await self._run(self.fs.cat_file, self.path(key))

    async def remove(self, key: str) -> None:
        """Remove ``key``; a missing object is not an error."""
        try:
            await self._run(self.fs.rm_file, self.path(key))
        except FileNotFoundError:
            pass

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except FileNotFoundError:
            raise
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise StorageUnavailable(f"storage error at {self.url}: {type(exc).__name__}") from exc

    # -- blocking implementations -------------------------------------------------------

    def _put_bytes(self, path: str, data: bytes) -> bool:
        if self.fs.exists(path):
            return False
        if self.is_local:
            return _local_atomic_write(path, iter((data,)))
        self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        self.fs.pipe_file(path, data)
        return True

    def _put_from(self, path: str, source: ObjectStore, source_path: str) -> bool:
        if self.fs.exists(path):
            return False
        if self.is_local and source.is_local:
            if _local_link(source_path, path):
                return True
            return _local_atomic_write(path, _read_chunks(source.fs, source_path))
        if source.fs is self.fs or type(source.fs) is type(self.fs):
            try:
                self.fs.copy(source_path, path)
                return True
            except NotImplementedError:
                pass
        with source.fs.open(source_path, "rb") as src, self.fs.open(path, "wb") as dst:
            while chunk := src.read(COPY_CHUNK):
                dst.write(chunk)
        return True


def _read_chunks(fs: fsspec.AbstractFileSystem, path: str) -> Iterator[bytes]:
    with fs.open(path, "rb") as src:
        while chunk := src.read(COPY_CHUNK):
            yield chunk


def _local_atomic_write(path: str, chunks: Iterator[bytes]) -> bool:
    """Write to a temporary name, fsync, then rename; the object appears whole or not at all."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if os.path.exists(path):
            return False
        os.replace(tmp, path)
        _fsync_dir(directory)
        return True
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _local_link(source: str, path: str) -> bool:
    """Publish a (durable, immutable) staged file under ``path`` by hard link: no copy.

    False when linking is impossible (another filesystem); the caller then copies.
    """
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        os.link(source, tmp)
    except FileNotFoundError:
        raise
    except OSError:
        return False
    try:
        os.replace(tmp, path)
        _fsync_dir(directory)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
