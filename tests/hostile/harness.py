"""Run one hostile archive through load, inspect and verify, bounded in time and memory.

Every attack test builds its bytes, then calls ``refused``: the exact error class, a message
naming the file and a fragment naming the member or field, no other exception, under
``MAX_SECONDS`` and ``MAX_PEAK_BYTES`` (tracemalloc's peak, which counts numpy's buffers).
"""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from craft import archive, raw_archive, stored_zip
from fuzzing import time_bound
from models import export_bytes, save_bytes, sequential_mlp

import modelpack
from modelpack import nn
from modelpack.errors import ModelpackError
from modelpack.format.schema import Manifest, TensorInfo, manifest_to_yaml
from modelpack.io.limits import DEFAULT_LIMITS, Limits

MAX_SECONDS = 5.0  # generous: tracemalloc slows Python down several times
MAX_PEAK_BYTES = 8 * 2**20


def bounded(call: Callable[[], Any], *, max_peak: int = MAX_PEAK_BYTES) -> tuple[Any, ModelpackError | None]:
    """(result, None) or (None, the ModelpackError); anything else propagates and fails."""
    tracemalloc.start()
    try:
        with time_bound(MAX_SECONDS):
            try:
                result, error = call(), None
            except ModelpackError as exc:
                result, error = None, exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < max_peak, f"peak allocation {peak} bytes"
    return result, error


def refused(
    tmp_path: Path,
    data: bytes,
    error: type[ModelpackError],
    fragment: str,
    *,
    inspect: bool = True,
    limits: Limits = DEFAULT_LIMITS,
    name: str = "hostile.mpk",
) -> ModelpackError:
    """``load`` (and ``inspect`` when the attack is in the manifest or container) raise exactly
    ``error`` with ``fragment`` (a regex) and the file name; ``verify`` reports it."""
    path = tmp_path / name
    path.write_bytes(data)
    _, exc = bounded(lambda: modelpack.load(path, limits=limits))
    _check(exc, error, fragment, path)
    manifest, inspect_exc = bounded(lambda: modelpack.inspect(path, limits=limits))
    if inspect:
        _check(inspect_exc, error, fragment, path)
    else:
        assert inspect_exc is None, f"inspect should not read the weights: {inspect_exc}"
        assert isinstance(manifest, Manifest)
    report, verify_exc = bounded(lambda: modelpack.verify(path, limits=limits))
    assert verify_exc is None, f"verify raised {verify_exc!r}"
    assert not report.ok
    assert any(re.search(fragment, problem) for problem in report.problems), report.problems
    assert exc is not None
    return exc


def _check(exc: ModelpackError | None, error: type[ModelpackError], fragment: str, path: Path) -> None:
    assert exc is not None, "accepted a hostile archive"
    assert type(exc) is error, f"{type(exc).__name__}: {exc}"
    assert str(path) in str(exc), f"message does not name the file: {exc}"
    assert re.search(fragment, str(exc)), f"{fragment!r} not in: {exc}"


# -- valid material to corrupt ------------------------------------------------------------

def model_bytes() -> bytes:
    """A tiny valid model archive: Dense(3 -> 2)."""
    return export_bytes(sequential_mlp(2, inputs=3))


class _Residual(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Dense(2, in_units=2)

    def forward(self, x: Any) -> Any:
        return self.a(x) + x


def graph_bytes() -> bytes:
    """A tiny valid traced model: a Graph calling its child 'a' (Dense 2 -> 2), plus its input."""
    net = _Residual()
    net.initialize(seed=0)
    return export_bytes(net, example=np.ones((1, 2), np.float32))


def tensors_bytes(arrays: dict[str, np.ndarray] | None = None) -> bytes:
    return save_bytes(arrays if arrays is not None else {"w": np.arange(6, dtype=np.float32)})


def tensors_manifest(index: dict[str, tuple[str, list[int]]]) -> bytes:
    """A valid ``kind: tensors`` manifest listing ``name -> (dtype, shape)``."""
    manifest = Manifest(
        format="modelpack",
        format_version="1.1",
        producer="hostile",
        kind="tensors",
        layout="dict",
        weights={name: TensorInfo(dtype=d, shape=s, sha256="0" * 64) for name, (d, s) in index.items()},
    )
    return manifest_to_yaml(manifest).encode()


def with_bundle(index: dict[str, tuple[str, list[int]]], bundle: bytes) -> bytes:
    """An archive whose manifest is valid and whose ``weights.npz`` is exactly ``bundle``."""
    return archive(tensors_manifest(index), bundle)


def raw_with_bundle(index: dict[str, tuple[str, list[int]]], bundle: bytes) -> bytes:
    """Like ``with_bundle``, but the outer zip too is written field by field (``raw_zip``)."""
    return raw_archive(tensors_manifest(index), bundle)


def with_members(index: dict[str, tuple[str, list[int]]], members: dict[str, bytes]) -> bytes:
    return with_bundle(index, stored_zip(members))
