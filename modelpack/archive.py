"""The ``.mpk`` container: a zip of ``manifest.yaml`` and the ``weights.npz`` bundle.

This is the one place that writes and reads archive bytes, so later layout work (aligned
members, checksums, streaming, hostile-input limits) grows here and nowhere else.

Layout (see ``spec/FORMAT.md``), in this order, both members stored (uncompressed):

- ``manifest.yaml``: the manifest (UTF-8 YAML, safe subset, no aliases);
- ``weights.npz``: an npz bundle; its ``.npy`` members are stored unless ``compress=True``.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Mapping

import numpy as np

from . import weights
from ._paths import PathOrFile, atomic_writer, describe, open_for_reading
from .errors import FormatError
from .schema import Manifest, manifest_from_yaml, manifest_to_yaml

__all__ = [
    "MANIFEST_MEMBER",
    "WEIGHTS_MEMBER",
    "MAX_MANIFEST_BYTES",
    "write_archive",
    "read_archive",
]

MANIFEST_MEMBER = "manifest.yaml"
WEIGHTS_MEMBER = "weights.npz"
MEMBERS = (MANIFEST_MEMBER, WEIGHTS_MEMBER)

# Largest manifest accepted by default; a real one is a few KB. Adjustable per call.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
_COPY_CHUNK = 1024 * 1024
_ZIP64_LIMIT = (1 << 31) - 1


def write_archive(
    target: PathOrFile,
    manifest: Manifest,
    arrays: Mapping[str, np.ndarray],
    *,
    compress: bool = False,
) -> None:
    """Write an archive atomically; the bytes depend only on the manifest and the arrays."""
    manifest_bytes = manifest_to_yaml(manifest).encode("utf-8")
    # The bundle goes to a temporary file first (not memory), then is copied in as one
    # stored member, so its local headers carry real sizes and offsets can be computed.
    with tempfile.TemporaryFile() as bundle, atomic_writer(target) as handle:
        weights.write_npz(bundle, arrays, compress=compress)
        bundle_size = bundle.tell()
        bundle.seek(0)
        with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(weights.fixed_zipinfo(MANIFEST_MEMBER), manifest_bytes)
            info = weights.fixed_zipinfo(WEIGHTS_MEMBER)
            with archive.open(info, mode="w", force_zip64=bundle_size > _ZIP64_LIMIT) as member:
                shutil.copyfileobj(bundle, member, _COPY_CHUNK)


def read_archive(
    source: PathOrFile, *, max_manifest_bytes: int = MAX_MANIFEST_BYTES
) -> tuple[Manifest, dict[str, np.ndarray]]:
    """Read and check an archive: the manifest, then every tensor against its index entry."""
    name = describe(source)
    with open_for_reading(source) as handle:
        try:
            archive = zipfile.ZipFile(handle, mode="r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise FormatError(f"{name}: not a modelpack archive (not a zip file: {exc})") from None
        with archive:
            infos = _check_members(archive, name)
            manifest = _read_manifest(archive, infos[MANIFEST_MEMBER], name, max_manifest_bytes)
            try:
                with archive.open(infos[WEIGHTS_MEMBER]) as member:
                    arrays = weights.read_npz(
                        member,
                        source=f"{name}: member {WEIGHTS_MEMBER!r}",
                        expected=manifest.weights,
                    )
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise FormatError(f"{name}: member {WEIGHTS_MEMBER!r} is damaged: {exc}") from None
    return manifest, arrays


def read_manifest(source: PathOrFile, *, max_manifest_bytes: int = MAX_MANIFEST_BYTES) -> Manifest:
    """Only the manifest (architecture, metadata, tensor index), without reading weights."""
    name = describe(source)
    with open_for_reading(source) as handle:
        try:
            archive = zipfile.ZipFile(handle, mode="r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise FormatError(f"{name}: not a modelpack archive (not a zip file: {exc})") from None
        with archive:
            infos = _check_members(archive, name)
            return _read_manifest(archive, infos[MANIFEST_MEMBER], name, max_manifest_bytes)


def _check_members(archive: zipfile.ZipFile, name: str) -> dict[str, zipfile.ZipInfo]:
    """Exactly the expected members, each once; anything else is refused before reading."""
    infos: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        weights.check_member_header(info, name)
        if info.filename in infos:
            raise FormatError(f"{name}: duplicate member {info.filename!r}")
        if info.filename not in MEMBERS:
            raise FormatError(
                f"{name}: unexpected member {info.filename!r}; a modelpack archive holds "
                f"only {', '.join(MEMBERS)}"
            )
        infos[info.filename] = info
    for member in MEMBERS:
        if member not in infos:
            raise FormatError(f"{name}: member {member!r} is missing; is this a modelpack archive?")
    return infos


def _read_manifest(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, limit: int
) -> Manifest:
    if info.file_size > limit:
        raise FormatError(
            f"{name}: member {MANIFEST_MEMBER!r} is {info.file_size} bytes, over the limit of "
            f"{limit} (pass max_manifest_bytes to allow more)"
        )
    try:
        with archive.open(info) as member:
            raw = member.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise FormatError(f"{name}: member {MANIFEST_MEMBER!r} is damaged: {exc}") from None
    if len(raw) > limit:
        raise FormatError(f"{name}: member {MANIFEST_MEMBER!r} exceeds {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"{name}: member {MANIFEST_MEMBER!r} is not UTF-8: {exc}") from None
    return manifest_from_yaml(text, source=f"{name}: {MANIFEST_MEMBER}")
