"""The public verbs: ``export``/``load`` for models, ``save``/``load`` for tensors.

>>> modelpack.export(net, "mlp.mpk", metadata={"author": "me"})  # doctest: +SKIP
>>> net2 = modelpack.load("mlp.mpk")                              # doctest: +SKIP
>>> modelpack.save("x-file", [x, y]); x2, y2 = modelpack.load("x-file")  # doctest: +SKIP
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from . import __version__ as _version
from .errors import FileKindError, UnsupportedBlockError, UnsupportedDtypeError, UsageError
from .format import container
from .format.archive import Archive
from .format.schema import Layout, Manifest, check_tensor_name, describe_errors
from .format.versions import FORMAT_VERSION
from .io import npz
from .io.limits import DEFAULT_LIMITS, Limits
from .io.npy import dtype_name
from .io.npz import Integrity
from .io.paths import PathOrFile, describe, open_for_reading
from .io.remote import locate
from .io.sniff import is_mxnet

if TYPE_CHECKING:
    from .format.shards import ShardedArchive
    from .format.verify import VerifyReport
    from .nn.block import Block

__all__ = ["export", "load", "save", "inspect", "verify", "open_archive"]

PRODUCER = f"modelpack {_version}"
Tensors = np.ndarray | list[np.ndarray] | tuple[np.ndarray, ...] | dict[str, np.ndarray]


def export(
    net: Block,
    path: PathOrFile,
    *,
    example: Any = None,
    dynamic_batch: bool = True,
    dynamic_axes: Mapping[int, Mapping[int, str]] | None = None,
    metadata: Mapping[str, str] | None = None,
    compress: bool = False,
    max_shard_size: int | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``net``'s architecture and weights to one archive, atomically.

    A network of registered layers (``Sequential``, ``Dense``, ...) is described by its
    configs. A custom Block with a hand-written ``forward`` needs ``example`` (an input array,
    or a tuple of them): forward is traced on it into a graph of registered ops, and the
    export is refused unless the traced graph reproduces forward on the example and on a
    random input. With ``dynamic_batch`` the loaded model accepts any batch size (axis 0 of
    every input); ``dynamic_axes={input: {axis: name}}`` frees other dimensions (a shared name
    ties them); every other dimension is fixed by the example. An input may be a list or
    tuple of arrays (recurrent states: ``example=(x, [h, c])``); inputs are then numbered in
    the order of the flattened example.
    ``metadata`` is free-form text (description, author, license, ...); ``compress=True``
    deflates the weights (smaller, slower). ``max_shard_size="2GB"`` (or bytes) writes the
    tensors to numbered shard files beside ``path`` and ``path`` as their index (spec §12).
    ``path`` may be a URL (``s3://bucket/model.mpk``; ``pip install 'modelpack[remote]'``),
    with ``storage_options`` for its store as pandas takes them.
    """
    # Tracing and the layer library, imported to export a model only: saving or loading
    # tensors needs none of them (~130 ms of a fresh process).
    from . import tracing
    from .format import architecture
    from .nn import forward_hooks

    examples = _as_example(example)
    with forward_hooks.silenced():  # the checks below run forward; the user's hooks stay out of it
        traces, symbols = tracing.trace_for_export(
            net, examples, dynamic_batch=dynamic_batch, dynamic_axes=dynamic_axes
        )
        tree, arrays, ties = architecture.describe_for_export(net, traces)
        if traces is not None and examples is not None:  # the graph must reproduce forward
            loaded = architecture.build_model(tree, dict(arrays), "<traced graph>", ties)
            tracing.check_trace(net, loaded, examples, symbols)
    _write(locate(path, storage_options), arrays, metadata, compress, max_shard_size,
           kind="model", architecture=tree, ties=ties or None)


def save(
    path: PathOrFile,
    data: Tensors,
    *,
    metadata: Mapping[str, str] | None = None,
    compress: bool = False,
    max_shard_size: int | str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Save one array, a list or tuple of arrays, or a ``dict[str, ndarray]``, atomically.

    ``load`` gives back the same kind of container with bitwise-equal arrays. Options as for
    ``export``.
    """
    arrays, layout = _flatten_tensors(data)
    _write(locate(path, storage_options), arrays, metadata, compress, max_shard_size,
           kind="tensors", layout=layout)


def load(
    path: PathOrFile,
    *,
    mmap: bool = False,
    integrity: Integrity | str = "crc32",
    limits: Limits = DEFAULT_LIMITS,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Load an archive: a ready ``modelpack.nn`` model, or the tensors that were saved.

    Nothing in the file is executed: the manifest is safe YAML validated against the schema,
    layer types come from the registry, and arrays are read without pickle. Every structure
    and size is checked before anything it declares is allocated (``spec/FORMAT.md`` §1.1, §8);
    any problem is a ``ModelpackError`` naming the file and the member.

    ``integrity="crc32"`` (the default) checks zip's CRC-32 of every tensor read and the
    manifest's SHA-256; ``"sha256"`` also checks each tensor's SHA-256 (about twice the time).
    ``mmap=True`` maps the weights read-only instead of reading them (no copy; pages are read
    as the model touches them; each parameter's CRC-32 is checked on its first read). A file
    of a few MiB is read whole, and its tensors are views of that one buffer.
    ``limits=modelpack.Limits(...)`` raises a resource limit for a large file you trust;
    ``max_activation_bytes`` among them bounds what the loaded model's forward may allocate.

    ``path`` may be a URL, with ``storage_options`` (see ``export``); a sharded archive is
    loaded from its index and every shard.

    An MXNet NDArray file (``npx.save``, Gluon ``save_parameters``) gives what MXNet's
    ``npx.load`` gives: a dict when its arrays are named, else a list (MXNet is not needed).
    A parameter file (``net.save_parameters``' ``.npz``, or ``numpy.savez``'s without pickled
    objects) gives its arrays by name, as MXNet's ``npx.load`` reads its parameter files.

    >>> net = modelpack.load("mlp.mpk", integrity="sha256")  # doctest: +SKIP
    """
    path = locate(path, storage_options)
    # Opened once: sniffed, then read by offset (unbuffered: a buffer would hold nothing read)
    with open_for_reading(path, buffered=False) as handle:
        if is_mxnet(handle):
            from .interop.mxnet import ndarray  # a translator: imported only for its files

            # (a file opened here is buffered for that reader, which reads in sequence)
            reader = handle
            if handle is not path and isinstance(handle, io.FileIO):
                reader = io.BufferedReader(handle)
            return ndarray.load(reader, limits=limits)
        try:
            archive = (Archive.for_load(handle, limits=limits, integrity=integrity) if not mmap
                       else Archive(handle, limits=limits, integrity=integrity))
        except FileKindError as exc:
            if exc.kind != "npz":
                raise
            archive = None
        if archive is None:  # a parameter file: its arrays by name, as MXNet's npx.load reads them
            return npz.read_npz(handle, source=describe(path), limits=limits)
        with archive as opened:
            if opened.manifest.kind == "sharded":
                from .format.shards import ShardedArchive  # (only a sharded index needs it)

                with ShardedArchive(opened, path, limits=limits, integrity=integrity) as sharded:
                    return sharded.load(mmap=mmap)
            return opened.load(mmap=mmap)


def open_archive(
    path: PathOrFile,
    *,
    limits: Limits = DEFAULT_LIMITS,
    integrity: Integrity | str = "crc32",
    storage_options: Mapping[str, Any] | None = None,
) -> Archive | ShardedArchive:
    """Open an archive for lazy reading (``modelpack.open``); use it as a context manager.

    Only the zip directories and the manifest are read; each tensor when asked for (and of a
    sharded archive, each shard when one of its tensors is). ``path`` may be a URL, with
    ``storage_options`` (see ``export``); a remote archive is read by byte range.
    """
    path = locate(path, storage_options)
    archive = Archive(path, limits=limits, integrity=integrity)
    if archive.manifest.kind != "sharded":
        return archive
    from .format.shards import ShardedArchive

    try:
        return ShardedArchive(archive, path, limits=limits, integrity=integrity)
    except BaseException:
        archive.close()
        raise


def _as_example(example: Any) -> tuple[Any, ...] | None:
    """One input, or a tuple or list of inputs (forward's positional arguments); an input may
    itself be a tuple or list of arrays (a recurrent state) or None."""
    if example is None:
        return None
    items = example if isinstance(example, (tuple, list)) else (example,)

    def convert(label: str, item: Any) -> Any:
        if isinstance(item, (tuple, list)):
            return type(item)(convert(f"{label}[{i}]", x) for i, x in enumerate(item))
        return None if item is None else as_array(label, item)

    return tuple(convert(f"example input {i}", item) for i, item in enumerate(items))


def inspect(
    path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS, storage_options: Mapping[str, Any] | None = None
) -> Manifest:
    """The manifest of an archive (architecture, metadata, tensor index); weights are not read.

    The zip structure, the manifest's size, YAML, version, SHA-256 and schema are checked as
    ``load`` checks them. A sharded archive's index lists each shard's tensors (``shards``).
    """
    return container.read_manifest(locate(path, storage_options), limits=limits)


def verify(
    path: PathOrFile, *, limits: Limits = DEFAULT_LIMITS, storage_options: Mapping[str, Any] | None = None
) -> VerifyReport:
    """Check everything an archive records (of a sharded one, every shard too) and report every
    problem; raises only if the file cannot be opened (see ``modelpack.format.verify``)."""
    from .format.verify import verify as verify_archive

    return verify_archive(locate(path, storage_options), limits=limits)


def _write(
    path: PathOrFile,
    arrays: Mapping[str, np.ndarray],
    metadata: Mapping[str, str] | None,
    compress: bool,
    max_shard_size: int | str | None,
    **content: Any,
) -> None:
    """The manifest common to models and tensors (``content``: kind and its tree or layout)."""
    # Plain entries: the schema checks them as columns (a TensorInfo each costs ~5 µs).
    index: Any = {name: {"dtype": dtype_name(a.dtype), "shape": list(a.shape)} for name, a in arrays.items()}
    try:
        manifest = Manifest(
            format="modelpack", format_version=FORMAT_VERSION, producer=PRODUCER, weights=index,
            metadata=_check_metadata(metadata), **content,
        )
    except ValidationError as exc:  # e.g. a child named "a/b" gives parameter names a reader refuses
        raise UnsupportedBlockError(
            f"cannot write {describe(path)}: a reader would refuse its manifest: {describe_errors(exc)}"
        ) from None
    # (the writers are imported by the first write: a script that only reads loads none of them)
    if max_shard_size is not None:
        from .format.shards import write_sharded

        write_sharded(path, manifest, arrays, max_shard_size=max_shard_size, compress=compress)
    else:
        from .format import writer

        writer.write_archive(path, manifest, arrays, compress=compress)


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    if metadata is None:
        return {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise UsageError(
                f"metadata must map str to str; {key!r}: {value!r} maps "
                f"{type(key).__name__} to {type(value).__name__}"
            )
    return dict(metadata)


_NUMBERS = (np.ndarray, np.generic, bool, int, float, complex)


def as_array(label: str, value: Any) -> np.ndarray:
    """The one rule for a tensor given to ``save`` or ``export``, alone or in a container.

    numpy arrays and scalars and Python numbers are taken as they are; other array-likes with
    ``__array__`` or ``__dlpack__`` (torch, jax, ...) are converted; anything else (text,
    ``None``, a nested Python list) is refused naming ``label``.
    """
    if isinstance(value, _NUMBERS):
        array = np.asarray(value)
    elif hasattr(value, "__array__") or hasattr(value, "__dlpack__"):
        try:
            array = np.asarray(value) if hasattr(value, "__array__") else np.from_dlpack(value)
        except Exception as exc:  # e.g. torch: "Can't call numpy() on Tensor that requires grad"
            raise UnsupportedDtypeError(
                f"{label}: cannot convert {type(value).__name__} to a numpy array: {exc}"
            ) from None
    else:
        raise UnsupportedDtypeError(
            f"{label} is a {type(value).__name__}; give a numpy array, a number, or an array-like "
            "with __array__ or __dlpack__ (e.g. a torch tensor)"
        )
    npz.check_storable(label, array)
    return array


def _flatten_tensors(data: Tensors) -> tuple[dict[str, np.ndarray], Layout]:
    if isinstance(data, dict):
        arrays = {}
        for key, value in data.items():
            if not isinstance(key, str):
                raise UsageError(f"tensor dict keys must be str, found {key!r}")
            try:
                check_tensor_name(key)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
            arrays[key] = as_array(f"tensor {key!r}", value)
        return arrays, "dict"
    if isinstance(data, (list, tuple)):
        layout: Layout = "tuple" if isinstance(data, tuple) else "list"
        return {str(i): as_array(f"item [{i}]", v) for i, v in enumerate(data)}, layout
    return {"0": as_array("the array to save", data)}, "single"
