"""Reading archives fast: ``modelpack.open`` for lazy access, and the full and mapped loads.

``Archive`` opens by reading the archive's zip directory and the manifest; each tensor is
read (or memory-mapped) on request. When the manifest records every tensor's offset in the
bundle (format 1.5), a tensor is found by its offset: its local header and its own entry in
the bundle's directory are read and must agree, so reading one tensor reads no other
tensor's headers. Reads of the whole archive, and anything unusual, read and check the
bundle's whole directory (and the offsets against it). Stored tensors are read straight into
their final arrays with ``os.preadv`` — one copy from the page cache, no intermediate
``bytes`` — on the shared I/O threads (``io.workers``), so reading one tensor overlaps the
CRC-32 of another (both release the GIL).

Integrity, by path (``spec/FORMAT.md`` §7): a full load and ``get_tensor`` check each
tensor's CRC-32 (and SHA-256 with ``integrity="sha256"``) as they read it; a memory-mapped
model checks a parameter when it first reads it (``Parameter.data()``, until the check
passes), so pages are only touched when used; arrays handed out mapped
(``get_tensor(..., mmap=True)``, a mapped load of a tensor archive) are checked before they
are returned. No path ever returns bytes that failed a check.
"""

from __future__ import annotations

import contextlib
import functools
import mmap as mmap_module
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import FormatError, LimitError, TensorNotFoundError, UsageError
from ..io import npy, npz
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.npz import Integrity
from ..io.npz_offsets import PlacedMembers
from ..io.pages import fresh_bytes, read_target
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.workers import shared_pool
from ..io.zipio import Member, read_fully
from . import container, tensor_index
from .schema import LayerNode, Manifest, TensorInfo, model_entries
from .tensor_index import Entry, TensorIndex

if TYPE_CHECKING:
    from ..nn.parameter import Parameter

__all__ = ["OpenArchive", "Archive", "open_archive"]

_PARALLEL_BYTES = 1 << 20  # below this, handing reads to threads costs more than it saves
# Tensors this small on average cost Python's per-tensor work more than their copy: threads
# would wait on each other for the interpreter, so they are read on the calling thread.
_SMALL_TENSOR_BYTES = 16 << 10
# A full load of a file up to this size reads it whole (``Archive.for_load``): its tensors are
# then views of that one buffer; from ``OVERLAP_BYTES`` on, its directories and manifest are
# parsed on a worker meanwhile.
READ_AHEAD_BYTES = 4 << 20
OVERLAP_BYTES = 768 << 10


def _batches(located: list[npz.TensorLocation]) -> list[list[npz.TensorLocation]]:
    """The reads in tasks of about ``_PARALLEL_BYTES`` or more (one per large tensor)."""
    batches: list[list[npz.TensorLocation]] = [[]]
    size = 0
    for location in located:
        if size >= _PARALLEL_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(location)
        size += location.nbytes
    return batches if batches[0] else []


Expected = TensorInfo | Entry  # a tensor's entry, as the manifest's index or as plain values

_Open = TypeVar("_Open", bound="OpenArchive")


class OpenArchive:
    """What every open archive answers alike, one file (``Archive``) or a sharded index with
    its shards (``ShardedArchive``): the manifest's fields, the tensor index as a mapping of
    names, and closing as a context manager."""

    manifest: Manifest
    name: str
    _index: Mapping[str, TensorInfo]  # every tensor, in bundle order

    @property
    def architecture(self) -> LayerNode | None:
        """The layer tree of a model archive (None for a tensor archive)."""
        return self.manifest.architecture

    @property
    def metadata(self) -> dict[str, str]:
        """The free-form metadata given at export."""
        return dict(self.manifest.metadata)

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        """Every tensor's dtype, shape and SHA-256, in bundle order (nothing is read)."""
        return dict(self._index)

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Open) -> _Open:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Archive(OpenArchive):
    """An open archive: architecture, metadata and tensor index at hand; tensors on request.

    >>> with modelpack.open("mlp.mpk") as archive:          # doctest: +SKIP
    ...     print(archive.metadata, list(archive.tensors))
    ...     w = archive.get_tensor("hidden.weight")
    """

    def __init__(
        self, path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS, integrity: Integrity | str = "crc32"
    ) -> None:
        self._integrity = Integrity.of(integrity)
        self.name = describe(path)
        # (A local path's file is its own context manager; an ExitStack, ~25 us of a small
        # archive's open and close after a collection, is made only for a deflated bundle's
        # temporary file.)
        opener = open_for_reading(path, buffered=False)
        self._handle: IO[bytes] = opener.__enter__()
        self._close_handle = opener.__exit__
        self._spool: contextlib.ExitStack | None = None
        try:
            opened = container.Container.open(self._handle, self.name, limits)
            self._file_bytes = opened.source.size  # (what a loaded model's activation budget scales with)
            self.manifest = opened.manifest(limits)
            self._index = self.manifest.weights
            self.comment = opened.comment  # the manifest's SHA-256 (a sharded index checks it)
            if not opened.bundle_stored:
                self._spool = contextlib.ExitStack()
            self._source = opened.bundle_source(limits, self._spool)
            self._limits, self._inflate_left = limits, opened.inflate_left
            # With every tensor's offset recorded (format 1.5), one tensor is read without the
            # bundle's directory, which is read and checked when a read needs all of it.
            self._bundle: npz.Bundle | None = None
            if not _all_placed(self.manifest.weights):
                self._vetted()
            elif len(self.manifest.weights) > limits.max_tensors:  # (the directory's count, unread)
                raise LimitError(self._source.where, "its number of tensors", len(self.manifest.weights),
                                 limit="max_tensors", allowed=limits.max_tensors)
        except BaseException:
            self._release()
            raise
        self._fd = _fileno(self._handle) if self._source.handle is self._handle else None
        self._map: mmap_module.mmap | None = None
        self._locations: dict[str, npz.TensorLocation | None] = {}
        # (the offsets' callable holds the manifest's index, not the archive: no reference cycle, so
        # the archive, its file and its read-ahead buffer go as soon as the caller drops them)
        weights = self.manifest.weights
        offsets = functools.partial(_recorded_offsets, weights)
        self._placed = PlacedMembers(self._source, weights, offsets, limits)
        self._whole: np.ndarray | None = None  # the whole file, read ahead (``for_load``)

    @classmethod
    def for_load(
        cls, handle: IO[bytes], *, limits: Limits = DEFAULT_LIMITS, integrity: Integrity | str = "crc32"
    ) -> Archive:
        """An archive whose tensors will all be read (``modelpack.load``).

        A small file's load costs mostly what does not grow with it: parsing its directories
        and manifest, and the fresh pages its arrays need (~0.6 ms a megabyte here on small
        pages, whoever reads; ``io.pages`` puts the buffer on huge ones). A file (opened, on
        disk) up to ``READ_AHEAD_BYTES`` is read whole into one buffer; ``read_all`` then hands
        out each tensor as a view of that buffer, checked as any read is. The buffer (the
        weights and their zip and npy headers, a few MiB at most) lives while any of its
        tensors does.

        From ``OVERLAP_BYTES`` on, a worker thread opens the archive while this thread reads
        (the read releases the interpreter, so both go on at once); a smaller file is opened
        on this thread, then read: its read is too short to hide the hand-off. (The other way
        round, a worker reading while this thread parses, is slower: the parse holds the
        interpreter, so the worker cannot start its read.) Medians of 150 bench-style cold
        loads taken in turn, ms, in turn / overlapped, on a 2-vCPU AMD EPYC VM (a hand-off
        ~30 µs): 6 tensors in 0.3 MB 0.84 / 1.22, 0.6 MB 1.05 / 0.93, 0.8 MB 1.51 / 1.28, 1 MB
        1.61 / 1.15; 200 tensors in 0.5 MB 2.93 / 3.39, in 1.1 MB 3.83 / 3.97. An earlier VM
        whose idle vCPU took ~150 µs to wake measured 1 MB 1.61 / 1.82 and 3.3 MB 2.41 / 1.88."""
        fd = _fileno(handle)
        size = os.fstat(fd).st_size if fd is not None else 0
        if fd is None or size > READ_AHEAD_BYTES:
            return cls(handle, limits=limits, integrity=integrity)
        if size < OVERLAP_BYTES:
            opening: Future[Archive] = Future()
            opening.set_result(cls(handle, limits=limits, integrity=integrity))
        else:
            opening = shared_pool().submit(cls._opened_vetted, handle, limits, integrity)
        try:
            whole = _read_whole(fd, size)
        except BaseException:  # (an interrupt: the archive opened meanwhile is closed)
            with contextlib.suppress(Exception):
                opening.result().close()
            raise
        archive = opening.result()  # an error opening it is raised here, as it would be
        if whole is not None and archive._fd is not None:  # (a deflated bundle is read as usual)
            archive._whole = whole
        return archive

    @classmethod
    def _opened_vetted(cls, handle: IO[bytes], limits: Limits, integrity: Integrity | str) -> Archive:
        """Opened, with the bundle's directory read and checked, as ``read_all`` needs it."""
        archive = cls(handle, limits=limits, integrity=integrity)
        try:
            if archive._fd is not None:
                archive._vetted()
        except BaseException:
            archive.close()
            raise
        return archive

    # -- what the manifest says ------------------------------------------------------------
    @property
    def kind(self) -> str:
        """``"model"`` or ``"tensors"``."""
        return self.manifest.kind

    # -- tensors -----------------------------------------------------------------------------
    def get_tensor(self, name: str, *, mmap: bool = False) -> np.ndarray:
        """One tensor, reading nothing else: a fresh writable array, or with ``mmap=True`` a
        read-only view of the file; either is checked before it is returned."""
        info = self.manifest.weights.get(name)
        if info is None:
            raise TensorNotFoundError(f"{self.name} has no tensor {name!r}; it has {len(self)} tensors")
        if mmap:
            return self._checked_map(self._require_location(name, info))
        return self._read_one(name, info)

    def read_all(self, *, mmap: bool = False) -> dict[str, np.ndarray]:
        """Every tensor, in bundle order, each checked: read in parallel, or mapped."""
        infos = tensor_index.entries(self.manifest.weights)
        bundle = self._vetted()
        if mmap:
            return {name: self._checked_map(self._require_location(name, i)) for name, i in infos.items()}
        if self._whole is not None:
            return self._views(bundle, infos, self._whole)
        if bundle.total_bytes < max(_PARALLEL_BYTES, len(infos) * _SMALL_TENSOR_BYTES):
            # A small file, or small tensors: read here, sooner than a thread would take them,
            # those that follow one another in one positioned read.
            return self._read_small(bundle, infos)
        # Headers are parsed in order on this thread (they share the file position); the
        # data reads use positioned reads and may run in parallel.
        located = {name: self._locate(name, info) for name, info in infos.items()}
        arrays: dict[str, np.ndarray] = {}
        for name, location in located.items():
            if location is None:
                arrays[name] = bundle.read(name, infos[name], integrity=self._integrity)
        pending = [location for location in located.values() if location is not None]
        batches = _batches(pending)
        if len(batches) < 2:
            arrays.update({location.name: self._read(location) for location in pending})
        else:  # small tensors together: a task costs about as much as reading 20 KB
            read = self._read
            for batch in shared_pool().map(lambda batch: [(loc.name, read(loc)) for loc in batch], batches):
                arrays.update(batch)
        return {name: arrays[name] for name in infos}

    def load(self, *, mmap: bool = False) -> Any:
        """The model (or the saved tensors), as ``modelpack.load`` returns it; a checkpoint
        gives its model (``modelpack.Checkpointer`` restores the rest)."""
        if self.manifest.kind == "tensors":
            return _unflatten(self.read_all(mmap=mmap), self.manifest.layout)
        if self.manifest.architecture is None:  # a checkpoint of a custom Block
            raise FormatError(
                f"{self.name} is a checkpoint of a custom Block, without an architecture to rebuild "
                "it from; restore it into the model: modelpack.Checkpointer(folder).restore(net)"
            )
        # The layer library, imported for a model only: a file of tensors needs none of it.
        from . import architecture

        infos = model_entries(self.manifest)  # a checkpoint's optimiser state is not read here
        self._vetted()
        tree, ties = self.manifest.architecture, self.manifest.ties
        if not mmap:
            whole = self.manifest.kind == "model"
            arrays = self.read_all() if whole else {name: self.get_tensor(name) for name in infos}
            net = architecture.build_model(tree, arrays, self.name, ties)
        else:
            # Mapped weights are checked when the model first reads them, so that loading
            # touches no pages (see _check_on_first_read).
            arrays = {name: self._mapped(self._require_location(name, info)) for name, info in infos.items()}
            net, params = architecture.build_model_with_params(tree, arrays, self.name, ties)
            self._check_on_first_read(params, infos)
        architecture.limit_loaded(net, self.name, self._limits, self._file_bytes)
        return net

    # -- reading -----------------------------------------------------------------------------
    def _read_small(self, bundle: npz.Bundle, infos: Mapping[str, Expected]) -> dict[str, np.ndarray]:
        """Every tensor, read on this thread: as written, several in one positioned read
        (``npz.read_written_runs``); any other one the exact way."""
        if self._fd is None:
            return {name: self._read_one(name, info) for name, info in infos.items()}
        names = list(infos)
        members = [bundle.members[name] for name in names]
        read = npz.read_written_runs(self._source, self._fd, members, names, list(infos.values()),
                                     integrity=self._integrity)
        return {name: self._read_one(name, infos[name]) if array is None else array
                for name, array in zip(names, read, strict=True)}

    def _views(
        self, bundle: npz.Bundle, infos: Mapping[str, Expected], whole: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Every tensor as a view of the file read whole (``for_load``), vouched for as
        ``read_written`` vouches; any other one read the exact way."""
        source, integrity, arrays = self._source, self._integrity, {}
        for name, info in infos.items():
            array = npz.written_view(whole, source.start, bundle.members[name], name, info, source, integrity)
            arrays[name] = self._read_one(name, info) if array is None else array
        return arrays

    def _read_one(self, name: str, info: Expected) -> np.ndarray:
        """One tensor: as modelpack writes it, in one read (``npz.read_written``) — with its
        local header when the manifest's offset and the directory entry alone find it
        (``PlacedMembers.predicted``); else its header checked, then its data read in place
        or through the member reader."""
        fd, integrity = self._fd, self._integrity
        fresh = fd is not None and name not in self._locations
        if fresh and self._bundle is None and info.offset is not None:
            predicted = self._placed.predicted(name, info.offset)
            if predicted is not None and fd is not None:
                member, header = predicted
                array = npz.read_written(self._source, fd, member, name, info, integrity=integrity,
                                         local_header=header)
                if array is not None:
                    return array
        member = self._member(name, info)
        if fresh and fd is not None:
            array = npz.read_written(self._source, fd, member, name, info, integrity=integrity)
            if array is not None:
                return array
        location = self._locate(name, info)
        if location is None:
            return npz.read_member(self._source, member, name, info, integrity=integrity)
        return self._read(location)

    def _read(self, location: npz.TensorLocation) -> np.ndarray:
        array = read_target(location.where, location.shape, location.dtype)
        buffer = npz.data_view(array)
        filled = 0
        assert self._fd is not None
        while filled < location.nbytes:
            count = os.preadv(self._fd, [buffer[filled:]], location.offset + filled)
            if count <= 0:
                raise FormatError(f"{location.where} is truncated: the file ends inside its data")
            filled += count
        location.check(buffer, integrity=self._integrity)
        return array

    def _locate(self, name: str, info: Expected) -> npz.TensorLocation | None:
        """Header checked once per tensor; None when the data cannot be read in place."""
        if name not in self._locations:
            located = None
            if self._fd is not None:
                located = npz.locate(self._source, self._member(name, info), name, info)
            self._locations[name] = located
        return self._locations[name]

    def _member(self, name: str, info: Expected) -> Member:
        """The tensor's member in the bundle: found by the offset the manifest records
        (``npz_offsets``), else through the whole directory, read and checked."""
        if self._bundle is None and info.offset is not None:
            if self._fd is None:  # a file fetched in ranges: the member's bytes in one request
                expected = npy.header_for(info.dtype, tuple(info.shape))
                if expected is not None:
                    self._placed.announce(name, info.offset, len(expected[0]) + expected[1])
            member = self._placed.member(name, info.offset)
            if member is not None:
                return member
        return self._vetted().members[name]

    def _vetted(self) -> npz.Bundle:
        """The bundle with its directory read and checked (spec §1.1), and the offsets the
        manifest records checked against it."""
        if self._bundle is None:
            bundle = npz.Bundle(self._source, limits=self._limits, max_inflated=self._inflate_left)
            bundle.check_names(self.manifest.weights)
            bundle.check_offsets(tensor_index.offsets(self.manifest.weights))
            self._bundle = bundle
        return self._bundle

    def _require_location(self, name: str, info: Expected) -> npz.TensorLocation:
        location = self._locate(name, info)
        if location is None:
            raise UsageError(
                f"{self.name}: tensor {name!r} cannot be memory-mapped: mapping needs an archive "
                "file on disk with stored (uncompressed) weights; load it without mmap=True"
            )
        return location

    def _mapped(self, location: npz.TensorLocation) -> np.ndarray:
        if self._map is None:
            assert self._fd is not None
            self._map = mmap_module.mmap(self._fd, 0, access=mmap_module.ACCESS_READ)
        count = location.nbytes // location.dtype.itemsize
        array = np.frombuffer(self._map, dtype=location.dtype, count=count, offset=location.offset)
        return array.reshape(location.shape)  # read-only: the map is

    def _checked_map(self, location: npz.TensorLocation) -> np.ndarray:
        """A mapped tensor handed to the caller: checked now (reading its pages once), since
        a plain array cannot check itself later."""
        array = self._mapped(location)
        location.check(array, integrity=self._integrity)
        return array

    def _check_on_first_read(self, params: Mapping[str, Parameter], infos: Mapping[str, Entry]) -> None:
        """Each mapped parameter (of ``params``, the model's) checks its CRC-32 when the model
        first reads it; the other tensors of ``infos`` (graph constants, small) are checked now."""
        integrity = self._integrity
        for name, info in infos.items():
            location = self._require_location(name, info)
            param = params.get(name)
            if param is None:
                location.check(self._mapped(location), integrity=integrity)
            else:
                check = functools.partial(location.check, param.array(), integrity=integrity)
                param.check_on_first_read(check)

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the file; memory-mapped arrays stay valid (the map outlives the file)."""
        self._map = None
        self._release()

    def _release(self) -> None:
        try:
            if self._spool is not None:
                self._spool.close()
        finally:
            self._close_handle(None, None, None)

    def __repr__(self) -> str:
        return f"<modelpack.Archive {self.name!r}: {self.kind}, {len(self)} tensors>"


def _recorded_offsets(weights: Mapping[str, TensorInfo]) -> list[int | None]:
    """Every tensor's offset as the manifest records it, in its order."""
    return list(tensor_index.offsets(weights).values())


def _all_placed(weights: Mapping[str, TensorInfo]) -> bool:
    """Whether every tensor records its offset (the index as checked knows without a look)."""
    if isinstance(weights, TensorIndex):
        return weights.first_unplaced is None
    return all(info.offset is not None for info in weights.values())


def open_archive(
    path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS, integrity: Integrity | str = "crc32"
) -> Archive:
    """Open an archive for lazy reading (``modelpack.open``); use it as a context manager."""
    return Archive(path, limits=limits, integrity=integrity)


def _unflatten(arrays: dict[str, np.ndarray], layout: str | None) -> Any:
    if layout == "single":
        return arrays["0"]
    if layout == "list":
        return list(arrays.values())
    if layout == "tuple":
        return tuple(arrays.values())
    return arrays


def _read_whole(fd: int, size: int) -> np.ndarray | None:
    """The file's ``size`` bytes in a fresh buffer, or None if they could not all be read
    (the exact path then says why). Its last huge page is taken when over half used: at most
    1 MiB resident unused, for a buffer at most ``READ_AHEAD_BYTES``."""
    try:
        whole = fresh_bytes(size, round_up=True)
        return whole if read_fully(fd, whole.data, 0) else None
    except (OSError, MemoryError):
        return None


def _fileno(handle: IO[bytes]) -> int | None:
    """A descriptor for positioned reads, or None (then tensors are read through the handle)."""
    if not hasattr(os, "preadv"):  # Windows has no preadv
        return None
    try:
        return handle.fileno()
    except (AttributeError, OSError, ValueError):
        return None
