"""Archives at URLs: object stores and web servers, through fsspec (an optional extra).

``s3://``, ``gs://``, ``http(s)://``, ``memory://`` ... work wherever fsspec and the store's
own package are installed (``pip install 'modelpack[remote]'``); credentials and endpoints
come from the environment as that package reads them, or from ``storage_options`` (as pandas
takes them). ``paths`` dispatches here; nothing else in modelpack imports fsspec.

Reading is by byte range, and the ranges are chosen here, not by fsspec's read-ahead cache
(s3fs's default block is 50 MiB: opening a 1 GB archive would pull half of it). A small read
fetches one 64 KiB block, so the zip's tail, the head with the manifest, and each tensor's
header come in one request each; a large read (a tensor's data) fetches exactly its bytes; a
long sequential stream (``verify``) fetches growing blocks of up to 16 MiB; and the zip
reader's batch of local headers is fetched at once, concurrently (``prefetch``).

Writing spools the archive to a local temporary file and uploads it only once every byte is
there, in one request (a single PUT, or a multipart upload that the store completes only
after its last part): a writer that fails or is killed leaves the old object in place.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

from ..errors import FormatError, MissingFileError, ModelpackError, PathError, UsageError

__all__ = ["Location", "is_url", "locate", "describe", "open_for_reading", "atomic_writer", "sibling"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")  # two letters at least: not "C:/"
# The package each store needs beyond fsspec (for the message when it is missing).
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "http": "aiohttp",
             "https": "aiohttp", "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs"}

BLOCK = 64 << 10  # what a small read fetches: a zip's tail, a manifest, an npy header
_MAX_READAHEAD = 16 << 20  # the largest block a sequential stream grows to
_CACHE_BYTES = 32 << 20  # fetched ranges kept for later reads (small and read-ahead ones)
_CACHE_SPAN = 1 << 20  # larger reads (a tensor's data) go to their array, not the cache
_MERGE_GAP = 4 << 10  # prefetched ranges closer than this are fetched as one
_MAX_TAIL = 128 << 10  # the first read at the end fetches this much: both zips' directories
_SLACK = 512  # fetched after each prefetched header: a member's first bytes (an npy header)


@dataclass(frozen=True)
class Location:
    """A URL and the options its store is opened with (``storage_options``)."""

    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return describe(self)


def is_url(target: object) -> bool:
    """True for a ``Location`` or a string with a scheme (``s3://…``), ``file://`` excepted
    (``local_path`` turns that into a plain path)."""
    if isinstance(target, Location):
        return True
    return (isinstance(target, str) and "://" in target  # (a plain path: found at memchr's speed)
            and bool(_SCHEME.match(target)) and not target.startswith("file://"))


def local_path(target: object) -> str | None:
    """The plain path of a ``file://`` URL (read and written as any local file), else None."""
    url = target.url if isinstance(target, Location) else target
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise PathError(url, "names another host", "file:// URLs name this machine's files")
    return unquote(parts.path)


def locate(path: Any, storage_options: Mapping[str, Any] | None) -> Any:
    """``path`` with its ``storage_options`` attached when it is a URL (as pandas takes them);
    options for anything else are refused rather than ignored."""
    if storage_options is None:
        return path
    if not is_url(path):
        raise UsageError(f"storage_options apply to URLs (s3://, gs://, https://, ...), not to {path!r}")
    url = path.url if isinstance(path, Location) else path
    return Location(url, dict(storage_options))


def describe(target: object) -> str:
    """The URL for messages, without what may be a secret: a user name and password, or a
    query string (a pre-signed URL's signature)."""
    url = target.url if isinstance(target, Location) else str(target)
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def sibling(target: Location | str, name: str) -> Location:
    """The object called ``name`` next to ``target`` (a shard beside its index)."""
    location = target if isinstance(target, Location) else Location(target)
    parts = urlsplit(location.url)
    folder = parts.path.rsplit("/", 1)[0]
    return Location(urlunsplit((parts.scheme, parts.netloc, f"{folder}/{name}", "", "")),
                    location.storage_options)


def _filesystem(target: Location | str) -> tuple[Any, str]:
    """The fsspec filesystem and the store's path for ``target``; what is missing named."""
    location = target if isinstance(target, Location) else Location(target)
    where = describe(location)
    scheme = _SCHEME.match(location.url)
    protocol = scheme.group(1).lower() if scheme else ""
    extra = _PACKAGES.get(protocol)
    try:
        import fsspec
    except ImportError:
        needs = f"fsspec and {extra}" if extra else "fsspec"
        raise PathError(
            where, f"reading and writing URLs needs {needs}",
            "pip install 'modelpack[remote]'" if extra in (None, "s3fs", "aiohttp")
            else f"pip install fsspec {extra}",
        ) from None
    try:
        return fsspec.core.url_to_fs(location.url, **dict(location.storage_options))
    except ImportError:
        raise PathError(where, f"the {protocol}:// store needs {extra or 'its fsspec package'}",
                        f"pip install {extra}" if extra else "") from None
    except ValueError as exc:
        if "not known" in str(exc).lower():
            raise PathError(where, f"fsspec knows no protocol {protocol!r}") from None
        raise PathError(where, f"is not a usable URL: {exc}") from None
    except Exception as exc:  # a store's client refusing its options or credentials
        raise PathError(where, f"cannot be opened: {type(exc).__name__}: {exc}") from None


def _error(where: str, exc: BaseException, *, reading: bool) -> ModelpackError:
    """A store's exception (botocore's, aiohttp's, an OSError) as the error a path would get."""
    if isinstance(exc, ModelpackError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return MissingFileError(where, "no such object") if reading else PathError(
            where, "cannot be written: its bucket or folder does not exist", "create it first")
    if isinstance(exc, PermissionError):
        return PathError(where, "access denied", "check the store's credentials")
    doing = "read" if reading else "written"
    return PathError(where, f"cannot be {doing}: {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def open_for_reading(target: Location | str) -> Iterator[IO[bytes]]:
    """A seekable binary file over the object, read by range (see the module's docstring)."""
    fs, path = _filesystem(target)
    where = describe(target)
    try:
        info = fs.info(path)
    except Exception as exc:
        raise _error(where, exc, reading=True) from None
    if info.get("type") == "directory":
        raise PathError(where, "is a folder, not a file", "give an object's name inside it")
    size = info.get("size")
    if not isinstance(size, int):
        raise PathError(where, "the store does not say how large the object is, so it cannot be "
                        "read by range")
    with RangeReader(fs, path, size, where=where) as reader:
        yield cast(IO[bytes], reader)  # a RawIOBase: read, readinto, seek, tell


@contextlib.contextmanager
def atomic_writer(target: Location | str) -> Iterator[IO[bytes]]:
    """A file whose bytes replace the object only if the block succeeds: spooled locally,
    then uploaded in one request that the store applies whole or not at all."""
    fs, path = _filesystem(target)
    where = describe(target)
    fd, spool = tempfile.mkstemp(prefix=".modelpack-upload.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
        try:
            fs.put_file(spool, path)
        except Exception as exc:
            raise _error(where, exc, reading=False) from None
    finally:
        os.unlink(spool)


class RangeReader(io.RawIOBase):
    """A read-only, seekable file over a remote object that fetches only what is read.

    ``requests`` and ``fetched`` count what went over the network, and ``round_trips`` the
    waits for it (a concurrent batch is one); the tests and ``bench/remote.py`` report them.
    """

    def __init__(self, fs: Any, path: str, size: int, *, where: str) -> None:
        super().__init__()
        self._fs, self._path, self.size, self.name = fs, path, size, where
        self._position = 0
        self._spans: dict[int, bytes] = {}  # fetched ranges by start, oldest first
        self._starts: list[int] = []  # the same starts, sorted
        self._cached = 0
        self._last_fetch_end = -1
        self._streak = 0  # consecutive fetches each starting where the previous ended
        self.requests = 0
        self.round_trips = 0
        self.fetched = 0
        self.ranges: list[tuple[int, int]] = []  # every range fetched, in order

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def read(self, count: int | None = -1) -> bytes:
        left = max(0, self.size - self._position)
        count = left if count is None or count < 0 else min(count, left)
        buffer = bytearray(count)
        self.readinto(buffer)
        return bytes(buffer)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(0, min(len(view), self.size - self._position))
        self._fill(self._position, view[:count])
        self._position += count
        return count

    def prefetch(self, ranges: list[tuple[int, int]]) -> None:
        """Fetch these ``(offset, length)`` ranges now, concurrently where the store can (the
        zip reader's local headers, which it then reads one by one)."""
        # (A range longer than a cached span is left to its read, which fetches it into its
        # array: fetched here, it would stay in the cache after that read.)
        wanted = sorted((start, min(self.size, start + length + _SLACK)) for start, length in ranges
                        if start < self.size and length <= _CACHE_SPAN
                        and not self._cached_range(start, start + length))
        merged: list[list[int]] = []
        for start, end in wanted:
            if merged and start - merged[-1][1] <= _MERGE_GAP:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        if not merged:
            return
        try:
            pieces = self._fs.cat_ranges([self._path] * len(merged), [s for s, _ in merged],
                                         [e for _, e in merged], on_error="raise")
        except Exception as exc:
            raise _error(self.name, exc, reading=True) from None
        self.requests += len(merged)
        self.round_trips += 1
        self.ranges.extend((start, end) for start, end in merged)
        for (start, end), data in zip(merged, pieces, strict=True):
            self._check_length(start, end, data)
            self.fetched += len(data)
            self._remember(start, data)

    # -- the cache ---------------------------------------------------------------------------
    def _fill(self, offset: int, out: memoryview) -> None:
        end, position = offset + len(out), offset
        while position < end:
            span = self._span_at(position)
            if span is not None:
                start, data = span
                take = min(end, start + len(data)) - position
                source = memoryview(data)[position - start : position - start + take]
                out[position - offset : position - offset + take] = source
                position += take
                continue
            later = bisect.bisect_right(self._starts, position)
            gap_end = min(end, self._starts[later]) if later < len(self._starts) else end
            fetch_start, fetch_end = position, gap_end
            block = self._block(position)
            if gap_end - position < block:  # small: fetch a block, its neighbours come free
                if gap_end < end:  # cached bytes follow: the block goes backwards (a zip's tail)
                    fetch_start = max(0, min(position, gap_end - block))
                else:
                    fetch_end = min(self.size, max(gap_end, position + block))
            if fetch_end == self.size and not self.requests:  # a zip's tail: a nested zip's
                fetch_start = max(0, min(fetch_start, self.size - _MAX_TAIL))  # ends just before
            data = self._fetch(fetch_start, fetch_end)
            take = gap_end - position
            skip = position - fetch_start
            out[position - offset : position - offset + take] = memoryview(data)[skip : skip + take]
            if len(data) <= _CACHE_SPAN or fetch_end > gap_end:
                self._remember(fetch_start, data)
            position = gap_end

    def _block(self, position: int) -> int:
        """A block; a stream of fetches, each where the last ended, fetches growing ones."""
        self._streak = self._streak + 1 if position == self._last_fetch_end else 0
        return BLOCK if self._streak < 2 else min(_MAX_READAHEAD, (256 << 10) << self._streak)

    def _span_at(self, position: int) -> tuple[int, bytes] | None:
        index = bisect.bisect_right(self._starts, position) - 1
        if index >= 0:
            start = self._starts[index]
            data = self._spans[start]
            if position < start + len(data):
                return start, data
        return None

    def _cached_range(self, start: int, end: int) -> bool:
        span = self._span_at(start)
        return span is not None and min(end, self.size) <= span[0] + len(span[1])

    def _remember(self, start: int, data: bytes) -> None:
        if start in self._spans:
            self._cached -= len(self._spans[start])
        else:
            bisect.insort(self._starts, start)
        self._spans[start] = data
        self._cached += len(data)
        while self._cached > _CACHE_BYTES and len(self._spans) > 1:
            oldest = next(iter(self._spans))
            self._cached -= len(self._spans.pop(oldest))
            self._starts.remove(oldest)

    def _fetch(self, start: int, end: int) -> bytes:
        try:
            data = self._fs.cat_file(self._path, start=start, end=end)
        except Exception as exc:
            raise _error(self.name, exc, reading=True) from None
        self.requests += 1
        self.round_trips += 1
        self.ranges.append((start, end))
        self.fetched += len(data)
        self._last_fetch_end = end
        self._check_length(start, end, data)
        return bytes(data)

    def _check_length(self, start: int, end: int, data: bytes) -> None:
        if len(data) != end - start:
            raise FormatError(
                f"{self.name}: asked for bytes {start}-{end} and received {len(data)}: the object "
                "changed while it was read, or the server ignores range requests"
            )
