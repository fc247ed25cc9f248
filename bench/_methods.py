"""Every competitor as one row of a table: how it saves, loads, or opens and reads one tensor.

A method writes or reads one of the files in ``FILES`` (a load reads what the matching save
wrote). Heavy or optional libraries (torch, safetensors) are imported on first use, and a
method that cannot run here says why through ``unavailable`` instead of failing; the two
modelpack APIs being built (``modelpack.open`` and ``load(..., mmap=True)``) are detected
the same way, at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import os
import pickle
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from _workloads import Workload

import modelpack

__all__ = ["Method", "METHODS", "FILES", "by_name"]

Arrays = Mapping[str, np.ndarray]

# file key → file name suffix; the saves named in METHODS write them, the loads read them.
FILES = {
    "raw": ".bin",
    "npz": ".npz",
    "safetensors": ".safetensors",
    "torch": ".pt",
    "pickle": ".pkl",
    "mpk-tensors": ".mpk",
    "mpk-model": ".model.mpk",
}


def _not_this_kind(*args: object) -> Any:
    raise TypeError("this method is of another kind (see Method.kind)")


@dataclass(frozen=True)
class Method:
    """One competitor.

    ``kind`` is "save" (``run(inputs, path)``), "load" (``run(path, workload)`` returns every
    tensor in memory; ``arrays`` turns the result into name → ndarray for checking), "lazy"
    (``open(path)`` is a context manager, ``get(handle, name)`` returns one tensor) or "check"
    (``run(path, workload)`` checks the whole file and raises if anything is wrong).
    ``needs`` is the input a save takes: "arrays", "net" or "torch".
    """

    name: str
    kind: str
    file: str
    run: Callable[..., Any] = _not_this_kind
    arrays: Callable[[Any], Arrays] = lambda result: result
    open: Callable[[str], contextlib.AbstractContextManager[Any]] = _not_this_kind
    get: Callable[[Any, str], Any] = _not_this_kind
    needs: str = "arrays"
    requires: str | None = None  # optional module to import
    unavailable_if: Callable[[], bool] = lambda: False

    def unavailable(self, workload: Workload | None = None) -> str | None:
        """Why this method cannot run here (or on ``workload``), or None."""
        model = self.needs == "net" or self.file == "mpk-model"
        if workload is not None and workload.tensors_only and model:
            return "n/a (tensor archives only at this tensor count)"
        if self.requires is not None and importlib.util.find_spec(self.requires) is None:
            return f"n/a ({self.requires} not installed)"
        if self.unavailable_if():
            return "n/a (not available)"
        return None


# -- raw bytes: the ceiling for a format with no metadata ----------------------------------
def _raw_write(arrays: Arrays, path: str, *, fsync: bool = False) -> None:
    with open(path, "wb", buffering=0) as f:
        for array in arrays.values():
            f.write(array.data.cast("B"))
        if fsync:
            os.fsync(f.fileno())


def _raw_readinto(path: str, workload: Workload) -> dict[str, np.ndarray]:
    arrays = {}
    with open(path, "rb", buffering=0) as f:
        for name, shape in workload.shapes().items():
            array = np.empty(shape, dtype=np.float32)
            view = array.data.cast("B")
            while view:  # readinto may return short reads; loop until the tensor is full
                count = f.readinto(view)
                if not count:
                    raise EOFError(f"{path}: file ends inside tensor {name!r}")
                view = view[count:]
            arrays[name] = array
    return arrays


# -- numpy ----------------------------------------------------------------------------------
def _np_load(path: str, workload: Workload) -> dict[str, np.ndarray]:
    with np.load(path) as bundle:
        return {name: bundle[name] for name in bundle}


# -- safetensors (numpy API) ----------------------------------------------------------------
def _st_save(arrays: Arrays, path: str) -> None:
    from safetensors.numpy import save_file

    save_file(dict(arrays), path)


def _st_save_durable(arrays: Arrays, path: str) -> None:
    """What a careful user does for a crash-safe save: a temporary file, fsync, rename over
    the target, fsync of the folder (modelpack's writers do the same)."""
    from safetensors.numpy import save_file

    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, "." + os.path.basename(path) + ".tmp")
    save_file(dict(arrays), temporary)
    _fsync_path(temporary)
    os.replace(temporary, path)
    _fsync_path(folder)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _st_load(path: str, workload: Workload) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(path)


def _st_open(path: str) -> contextlib.AbstractContextManager[Any]:
    from safetensors import safe_open

    return safe_open(path, framework="np")


# -- torch ----------------------------------------------------------------------------------
def _torch_save(tensors: Mapping[str, Any], path: str) -> None:
    import torch

    torch.save(dict(tensors), path)


def _torch_load(path: str, workload: Workload) -> dict[str, Any]:
    import torch

    return torch.load(path, weights_only=True)


@contextlib.contextmanager
def _torch_open_mmap(path: str) -> Iterator[dict[str, Any]]:
    import torch

    yield torch.load(path, weights_only=True, mmap=True)


def _torch_arrays(result: Mapping[str, Any]) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in result.items()}


# -- pickle ---------------------------------------------------------------------------------
def _pickle_dump(arrays: Arrays, path: str) -> None:
    with open(path, "wb") as f:
        pickle.dump(dict(arrays), f, protocol=5)


def _pickle_load(path: str, workload: Workload) -> dict[str, np.ndarray]:
    with open(path, "rb") as f:
        return pickle.load(f)


# -- modelpack ------------------------------------------------------------------------------
def _mp_load(path: str, workload: Workload) -> Any:
    return modelpack.load(path)


def _model_arrays(net: Any) -> dict[str, np.ndarray]:
    return {name: param.data() for name, param in net.collect_params().items()}


@contextlib.contextmanager
def _mp_open_mmap(path: str) -> Iterator[dict[str, Any]]:
    yield modelpack.load(path, mmap=True).collect_params()  # type: ignore[call-arg]


def _mp_verify(path: str, workload: Workload) -> None:
    report = modelpack.verify(path)
    if not report.ok:
        raise RuntimeError(str(report))


_HASH_CHUNK = 1 << 20


def _sha256_file(path: str, workload: Workload) -> None:
    """The file's bytes hashed with the format's digest (SHA-256) on all cores: each core reads
    and hashes its own contiguous share (hashing one stream cannot be split), through one
    reused 1 MiB buffer (as verify does: no fresh memory per chunk)."""
    size = os.path.getsize(path)
    cores = max(1, os.cpu_count() or 1)
    bounds = [size * i // cores for i in range(cores + 1)]

    def share(start: int, end: int) -> str:
        digest, buffer = hashlib.sha256(), memoryview(bytearray(_HASH_CHUNK))
        fd = os.open(path, os.O_RDONLY)
        try:
            while start < end:
                count = os.preadv(fd, [buffer[: min(_HASH_CHUNK, end - start)]], start)
                digest.update(buffer[:count])
                start += count
        finally:
            os.close(fd)
        return digest.hexdigest()

    with ThreadPoolExecutor(max_workers=cores) as pool:
        list(pool.map(share, bounds[:-1], bounds[1:]))


def _no_mmap_keyword() -> bool:
    return "mmap" not in inspect.signature(modelpack.load).parameters


def _no_open() -> bool:
    return not hasattr(modelpack, "open")


METHODS: list[Method] = [
    # saves
    Method("raw write", "save", "raw", run=_raw_write),
    Method("raw write + fsync", "save", "raw", run=lambda arrays, path: _raw_write(arrays, path, fsync=True)),
    Method("np.savez", "save", "npz", run=lambda arrays, path: np.savez(path, **arrays)),
    Method("safetensors save_file", "save", "safetensors", run=_st_save, requires="safetensors"),
    Method("safetensors save_file, durable", "save", "safetensors", run=_st_save_durable,
           requires="safetensors"),
    Method("torch.save", "save", "torch", run=_torch_save, needs="torch", requires="torch"),
    Method("pickle.dump", "save", "pickle", run=_pickle_dump),
    Method("modelpack.save", "save", "mpk-tensors", run=lambda arrays, path: modelpack.save(path, arrays)),
    Method("modelpack.export", "save", "mpk-model", run=lambda net, path: modelpack.export(net, path),
           needs="net"),
    # full loads: every tensor in memory, writable
    Method("raw readinto", "load", "raw", run=_raw_readinto),
    Method("np.load", "load", "npz", run=_np_load),
    Method("safetensors load_file", "load", "safetensors", run=_st_load, requires="safetensors"),
    Method("torch.load", "load", "torch", run=_torch_load, arrays=_torch_arrays, requires="torch"),
    Method("pickle.load", "load", "pickle", run=_pickle_load),
    Method("modelpack.load (tensors)", "load", "mpk-tensors", run=_mp_load),
    Method("modelpack.load (model)", "load", "mpk-model", run=_mp_load, arrays=_model_arrays),
    # lazy: open the file and read one small tensor
    Method("np.load + 1 tensor", "lazy", "npz", open=np.load, get=lambda bundle, name: bundle[name]),
    Method("safetensors safe_open + 1 tensor", "lazy", "safetensors", open=_st_open,
           get=lambda handle, name: handle.get_tensor(name), requires="safetensors"),
    Method("torch.load mmap + 1 tensor", "lazy", "torch", open=_torch_open_mmap,
           get=lambda tensors, name: tensors[name].numpy(), requires="torch"),
    Method("modelpack.load mmap + 1 tensor", "lazy", "mpk-model", open=_mp_open_mmap,
           get=lambda params, name: params[name].data(), unavailable_if=_no_mmap_keyword),
    Method("modelpack.open (tensors) + 1 tensor", "lazy", "mpk-tensors",
           open=lambda path: modelpack.open(path),  # type: ignore[attr-defined]
           get=lambda archive, name: archive.get_tensor(name), unavailable_if=_no_open),
    Method("modelpack.open + 1 tensor", "lazy", "mpk-model", open=lambda path: modelpack.open(path),  # type: ignore[attr-defined]
           get=lambda archive, name: archive.get_tensor(name), unavailable_if=_no_open),
    # checks of the whole file
    Method("SHA-256 of the file, all cores", "check", "mpk-tensors", run=_sha256_file),
    Method("modelpack.verify", "check", "mpk-tensors", run=_mp_verify),
]


def by_name(name: str) -> Method:
    """The method called ``name``; a KeyError lists the known names."""
    for method in METHODS:
        if method.name == name:
            return method
    raise KeyError(f"unknown method {name!r}; known: {', '.join(m.name for m in METHODS)}")
