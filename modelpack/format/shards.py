"""Sharded archives: a model too large for one file, as an index archive plus shard archives.

``export(net, "big.mpk", max_shard_size="2GB")`` writes ``big-00001-of-00003.mpk`` ... (each
an ordinary tensor archive holding a run of the tensors, in bundle order) and then
``big.mpk``, the index: an archive of kind ``sharded`` (format 1.4 on) with the architecture (or a
tensor layout), no tensors of its own, and for each shard its file name, size, manifest
SHA-256 and tensor index (``spec/FORMAT.md`` §12). An older reader refuses the index as an
unknown kind, and can still read each shard.

Reading is lazy per shard: ``modelpack.open`` reads the index only, and a shard is opened
(and checked against the index: size, manifest SHA-256, tensor list) the first time one of
its tensors is asked for. A shard that is missing, truncated, of another export or swapped
with another is refused naming it; ``verify`` checks the whole set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import IntegrityError, LimitError, ModelpackError, TensorNotFoundError, UsageError
from ..io.limits import DEFAULT_LIMITS, Limits
from ..io.npz import Integrity
from ..io.paths import PathOrFile, describe, is_file_object, open_for_reading, sibling
from . import container, writer
from .archive import Archive, OpenArchive, _unflatten
from .schema import Manifest, ShardInfo, manifest_to_yaml

__all__ = ["parse_size", "write_sharded", "ShardedArchive", "verify_shards", "shard_names"]

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*\Z")
_OVERHEAD = 256  # a tensor's zip and npy headers, roughly: what a shard holds beyond the data


def parse_size(value: int | str) -> int:
    """Bytes from ``2_000_000_000``, ``"2GB"`` (10⁹) or ``"2GiB"`` (2³⁰)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UsageError(f"max_shard_size must be a number of bytes or a size like '2GB', not {value!r}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(value)
        unit = match.group(2).upper() if match else ""
        if match is None or unit not in _UNITS:
            raise UsageError(
                f"max_shard_size {value!r} is not a size; give bytes or a number with one of "
                "B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"
            )
        size = int(float(match.group(1)) * _UNITS[unit])
    if size <= 0:
        raise UsageError(f"max_shard_size must be positive, not {value!r}")
    return size


def shard_names(index_name: str, count: int) -> list[str]:
    """``big.mpk`` → ``big-00001-of-00003.mpk``, ... (the index's extension kept)."""
    stem, extension = os.path.splitext(index_name)
    return [f"{stem}-{i:05d}-of-{count:05d}{extension or '.mpk'}" for i in range(1, count + 1)]


def _groups(arrays: Mapping[str, np.ndarray], max_bytes: int) -> list[list[str]]:
    """Consecutive runs of tensors, each within ``max_bytes`` unless one tensor alone is larger."""
    groups: list[list[str]] = [[]]
    filled = 0
    for name, array in arrays.items():
        size = array.nbytes + _OVERHEAD + len(name)
        if groups[-1] and filled + size > max_bytes:
            groups.append([])
            filled = 0
        groups[-1].append(name)
        filled += size
    return groups


def write_sharded(
    target: PathOrFile,
    manifest: Manifest,
    arrays: Mapping[str, np.ndarray],
    *,
    max_shard_size: int | str,
    compress: bool = False,
) -> None:
    """Write the shards, then the index that names them (each file atomically).

    The index is written last, so a reader never finds an index whose shards are not all
    there; a writer killed between shards leaves the previous index with some new shards,
    which the reader refuses naming the shard that does not match.
    """
    if is_file_object(target):
        raise UsageError("a sharded archive is several files: give a path or URL, not a file object")
    groups = _groups(arrays, parse_size(max_shard_size))
    index_name = os.path.basename(describe(target).rstrip("/"))
    infos = []
    for name, group in zip(shard_names(index_name, len(groups)), groups, strict=True):
        location = sibling(target, name)
        shard = Manifest(
            format="modelpack", format_version=manifest.format_version, producer=manifest.producer,
            kind="tensors", layout="dict", weights={n: manifest.weights[n] for n in group},
        )
        written = writer.write_archive(location, shard, {n: arrays[n] for n in group}, compress=compress)
        with open_for_reading(location) as handle:
            size = handle.seek(0, os.SEEK_END)
        digest = hashlib.sha256(manifest_to_yaml(written).encode("utf-8")).hexdigest()
        infos.append(ShardInfo(file=name, size=size, manifest_sha256=digest, tensors=dict(written.weights)))
    index = manifest.model_copy(update={"kind": "sharded", "weights": {}, "shards": infos})
    writer.write_archive(target, index, {})


class ShardedArchive(OpenArchive):
    """An open sharded archive: the index read, each shard opened when first needed.

    It answers as ``modelpack.Archive`` does (``tensors``, ``get_tensor``, ``load`` ...);
    ``kind`` is what the shards hold together (``"model"`` or ``"tensors"``).
    """

    def __init__(
        self, index: Archive, location: PathOrFile, *, limits: Limits = DEFAULT_LIMITS,
        integrity: Integrity | str = "crc32",
    ) -> None:
        self._index_archive, self.manifest, self.name = index, index.manifest, index.name
        assert self.manifest.shards is not None
        self.shards: list[ShardInfo] = list(self.manifest.shards)
        self._limits, self._integrity = limits, integrity
        self._index = self.manifest.shard_tensors()
        if len(self._index) > limits.max_tensors:
            raise LimitError(self.name, "its number of tensors", len(self._index),
                             limit="max_tensors", allowed=limits.max_tensors)
        self._locations = [sibling(location, shard.file) for shard in self.shards]
        self._shard_of = {name: i for i, shard in enumerate(self.shards) for name in shard.tensors}
        self._opened: dict[int, Archive] = {}
        self._cleanup = contextlib.ExitStack()

    # -- what the index says -----------------------------------------------------------------
    @property
    def kind(self) -> str:
        return "model" if self.manifest.architecture is not None else "tensors"

    # -- tensors -----------------------------------------------------------------------------
    def get_tensor(self, name: str, *, mmap: bool = False) -> np.ndarray:
        """One tensor, opening (and checking) only the shard that holds it."""
        if name not in self._index:
            raise TensorNotFoundError(f"{self.name} has no tensor {name!r}; it has {len(self)} tensors")
        return self.shard(self._shard_of[name]).get_tensor(name, mmap=mmap)

    def read_all(self, *, mmap: bool = False) -> dict[str, np.ndarray]:
        arrays: dict[str, np.ndarray] = {}
        for i in range(len(self.shards)):
            arrays.update(self.shard(i).read_all(mmap=mmap))
        return {name: arrays[name] for name in self._index}

    def load(self, *, mmap: bool = False) -> Any:
        """The model or tensors, read from every shard (mapped ones checked as they are mapped)."""
        arrays = self.read_all(mmap=mmap)
        if self.manifest.architecture is None:
            return _unflatten(arrays, self.manifest.layout)
        from . import architecture  # the layer library, for a model only (as in Archive.load)

        net = architecture.build_model(self.manifest.architecture, arrays, self.name, self.manifest.ties)
        architecture.limit_loaded(net, self.name, self._limits, sum(s.size for s in self.shards))
        return net

    def shard(self, i: int) -> Archive:
        """Shard ``i`` (from 0), opened and checked against the index on first use."""
        if i in self._opened:
            return self._opened[i]
        info, location = self.shards[i], self._locations[i]
        label = f"shard {i + 1} of {len(self.shards)} of {self.name}"
        try:
            handle = self._cleanup.enter_context(open_for_reading(location))
            size = handle.seek(0, os.SEEK_END)
            if size != info.size:
                raise IntegrityError(
                    f"{describe(location)} is {size} bytes, the index records {info.size} "
                    "(truncated, damaged, or another file)"
                )
            archive = Archive(handle, limits=self._limits, integrity=self._integrity)
            self._cleanup.callback(archive.close)
            check_shard(archive.name, info, archive.comment, archive.manifest)
        except ModelpackError as exc:
            exc.args = (f"{label}: {exc}",)  # same class and fields; PathError prints args[0]
            raise
        self._opened[i] = archive
        return archive

    # -- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        self._cleanup.close()
        self._index_archive.close()

    def __repr__(self) -> str:
        return (f"<modelpack.Archive {self.name!r}: {self.kind}, {len(self)} tensors in "
                f"{len(self.shards)} shards>")


def check_shard(where: str, info: ShardInfo, comment: bytes, manifest: Manifest) -> None:
    """A shard is the one the index names: its manifest's SHA-256 (from its zip comment,
    which its reader has checked against the manifest) and its tensors are the index's."""
    expected = container.MANIFEST_HASH_PREFIX + info.manifest_sha256.encode("ascii")
    if comment != expected:
        found = comment[len(container.MANIFEST_HASH_PREFIX):].decode("ascii", "replace") or "none"
        raise IntegrityError(
            f"{where}: its manifest's SHA-256 is {found}, the index records {info.manifest_sha256} "
            "(a shard of another export, or shards swapped)"
        )
    if manifest.kind != "tensors" or list(manifest.weights.items()) != list(info.tensors.items()):
        raise IntegrityError(f"{where}: holds other tensors than the index lists for it")


def verify_shards(path: PathOrFile, manifest: Manifest, limits: Limits, report: Any) -> None:
    """``verify`` of an index: every shard verified whole, each checked against the index,
    and the architecture's parameters against the tensors of all shards together."""
    from .verify import _check_architecture, verify

    assert manifest.shards is not None
    count = len(manifest.shards)
    for i, info in enumerate(manifest.shards):
        label = f"shard {i + 1} of {count} of {report.path}"
        try:
            location = sibling(path, info.file)
            with open_for_reading(location) as handle:
                where = describe(location)
                size = handle.seek(0, os.SEEK_END)
                if size != info.size:
                    report.problems.append(f"{label}: {where} is {size} bytes, the index records {info.size}")
                sub = verify(handle, limits=limits, follow_shards=False)  # (a shard naming the index)
                report.problems.extend(f"{label}: {problem}" for problem in sub.problems)
                report.tensors.update(sub.tensors)
                report.notes.extend(note for note in sub.notes if note not in report.notes)
                with contextlib.suppress(ModelpackError):  # a damaged shard is reported above
                    opened = container.Container.open(handle, where, limits)
                    shard_manifest = opened.manifest(limits)
                    try:
                        check_shard(where, info, opened.comment, shard_manifest)
                    except IntegrityError as exc:
                        report.problems.append(f"{label}: {exc}")
        except ModelpackError as exc:  # missing or unreadable
            report.problems.append(f"{label}: {exc}")
            report.tensors.update({name: "missing" for name in info.tensors})
    if manifest.architecture is not None:
        tensors = manifest.shard_tensors()
        whole = manifest.model_copy(update={"kind": "model", "weights": tensors, "shards": None})
        _check_architecture(whole, report)
