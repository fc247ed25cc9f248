"""A Block's inference run by onnxruntime: ``net.hybridize(backend="onnxruntime")``.

Gluon's ``hybridize`` turns a network into a graph that a runtime executes; MXNet 1.9 takes a
``backend`` for it. Here the graph is the ONNX model ``to_model_proto`` writes (the network
traced on the call's own inputs, checked against its numpy forward) and the runtime is
onnxruntime, whose CPU kernels prepack the weights and fuse Conv → BatchNorm → ReLU: the
ResNet-18-style forward of ``bench/compute.py`` took 12 ms there against 43 ms on numpy and
20 ms in torch (2 threads). numpy stays the reference, and several calls still go to it:

- a call in training mode (Dropout and BatchNorm behave differently there); under
  ``autograd.record()`` (onnxruntime has no gradients) the recorder runs the layers itself,
  and so does a trace;
- the first call at each input signature (shapes and dtypes): it runs on numpy, so the
  activation budget of a loaded model (``nn.budget``) checks its sizes before anything is
  allocated, and its output's structure is the one the session's outputs are put back into;
- a call whose inputs are not all numpy arrays.

A session is kept per input signature, less the batch axis (one graph serves every batch
size). The weights are constants of the graph (onnxruntime prepacks them: fed as inputs each
call, the same forward took 34 ms), so each call first compares every parameter's bits with
a copy taken when the session was built: a weight replaced or changed in place (a training
step, ``set_data``, ``load_parameters``), or a child added or replaced (as Gluon drops its
cached graph then), sends that call to numpy: a stale session never runs. It is built again
once the block is the same at two calls running, so a loop that trains between its inference
calls (a GAN's generator making samples each step) stays on numpy rather than exporting at
every step. That comparison reads the weights once a call (~0.3 ms for 3 MB), and the copies hold as
much memory again as the weights. As in Gluon's hybridized graphs, what a custom ``forward`` reads
besides parameters (a float attribute, a numpy constant) is fixed in the session built from its
trace, and the forward hooks of the block's children do not run for calls onnxruntime serves.
A network the exporter cannot translate, or onnxruntime cannot run, for some inputs runs on
numpy for inputs of those shapes (any batch size), with a ``RuntimeWarning`` saying why, once.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UsageError
from ...nn import structure
from ...nn.block import Block
from ...nn.kernels.derived import bits_of
from ...nn.mode import is_training

__all__ = ["BACKEND", "Engine", "engine_for"]

BACKEND = "onnxruntime"


def engine_for(block: Block) -> Engine:
    """An engine for ``block``, or UsageError naming what to install when onnxruntime is not."""
    try:
        import onnxruntime  # noqa: F401

        from . import export  # noqa: F401  (onnx itself)
    except ImportError as exc:
        raise UsageError(
            f"hybridize(backend={BACKEND!r}) runs inference on onnxruntime: pip install "
            f"'modelpack[onnx]' ({exc})"
        ) from None
    return Engine(type(block).__name__)


@dataclass
class _Weight:
    """A parameter, and a copy of its bits when the session was built."""

    parameter: Any
    bits: np.ndarray


@dataclass
class _Session:
    session: Any  # onnxruntime.InferenceSession
    inputs: list[str]
    output_tree: Any
    weights: list[_Weight]


class Engine:
    """The sessions of one hybridized block, built on first use per input signature."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._sessions: dict[tuple[Any, ...], _Session] = {}
        self._vetted: set[tuple[Any, ...]] = set()  # exact signatures run once on numpy
        # the block as the last numpy call of a stale signature found it: rebuilt if the same next
        self._changed: dict[tuple[Any, ...], list[_Weight]] = {}
        self._refused: dict[tuple[Any, ...], str] = {}  # batchless signatures onnxruntime cannot run, why
        self._warned = False
        self._lock = threading.Lock()
        self._local = threading.local()  # .building: the export runs the block on numpy

    def __reduce__(self) -> tuple[type[Engine], tuple[str]]:
        """A copied or pickled block gets an engine of its own, its sessions built anew (they
        are onnxruntime objects, bound to this block's weights)."""
        return Engine, (self._name,)

    def run(self, block: Block, args: tuple[Any, ...], numpy_call: Any) -> Any:
        """The block's output for ``args`` from onnxruntime, or from ``numpy_call(*args)``
        where this call goes to numpy (see the module's docstring)."""
        if is_training() or getattr(self._local, "building", False):
            return numpy_call(*args)
        tree, leaves = structure.flatten(args)
        if not leaves or not all(isinstance(leaf, np.ndarray) for leaf in leaves):
            return numpy_call(*args)
        exact = (_as_key(tree), tuple((leaf.shape, leaf.dtype.str) for leaf in leaves))
        key = _batchless(exact)
        if key in self._refused:
            return numpy_call(*args)
        with self._lock:
            entry = self._sessions.get(key)
        current = entry is not None and _unchanged(block, entry.weights)
        if entry is None or not current or exact not in self._vetted:
            # On numpy: the budget checks this signature's sizes (and deferred shapes are
            # inferred) before a session for it is built or used.
            out = numpy_call(*args)
            with self._lock:
                self._vetted.add(exact)
            if entry is None:
                self._build(block, args, key, structure.flatten(out)[0])
            elif not current:
                self._rebuild_if_settled(block, args, key, structure.flatten(out)[0])
            return out
        arrays = [np.ascontiguousarray(leaf).view(np.ndarray) for leaf in leaves]
        try:
            found = entry.session.run(None, dict(zip(entry.inputs, arrays, strict=True)))
        except Exception as exc:  # (onnxruntime's own error types; numpy computes it instead)
            self._refuse(key, exc)
            return numpy_call(*args)
        return structure.unflatten(entry.output_tree, found)

    def _rebuild_if_settled(self, block: Block, args: tuple[Any, ...], key: tuple[Any, ...],
                            output_tree: Any) -> None:
        """A stale session's signature: built again if the block is as the last call found it,
        else this call's state kept for the next one to compare with."""
        with self._lock:
            seen = self._changed.pop(key, None)
        if seen is not None and _unchanged(block, seen):
            self._build(block, args, key, output_tree)
        else:
            with self._lock:
                self._changed[key] = _snapshot(block)

    def _build(self, block: Block, args: tuple[Any, ...], key: tuple[Any, ...], output_tree: Any) -> None:
        """The session of the signature ``key`` for the block as it is now, traced on ``args``
        (just run on numpy, which gave ``output_tree``), in place of any before it."""
        from .export import to_model_proto  # (onnx loads with the first session)

        self._local.building = True
        try:
            weights = _snapshot(block)  # before the export reads them
            proto = to_model_proto(block, args, where=self._name)  # (args: the call's inputs, in order)
            session = _session(proto.SerializeToString())
        except Exception as exc:  # the exporter's refusal, or onnxruntime's (an op it lacks for a dtype)
            self._refuse(key, exc)
            return
        finally:
            self._local.building = False
        entry = _Session(session, [i.name for i in proto.graph.input], output_tree, weights)
        with self._lock:
            self._sessions[key] = entry

    def _refuse(self, key: tuple[Any, ...], exc: Exception) -> None:
        """From now on calls of this signature (any batch size) run on numpy; the first
        refusal is a warning saying why."""
        reason = self._refused[key] = f"{type(exc).__name__}: {exc}"
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"hybridize(backend={BACKEND!r}): {self._name} runs on numpy for these inputs, as "
                f"onnxruntime cannot run it: {reason}", RuntimeWarning, stacklevel=_caller_level(),
            )


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside modelpack: the user's call of the block."""
    package = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def _session(model: bytes) -> Any:
    import onnxruntime

    from ...nn.kernels import parallel

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = parallel.threads()  # modelpack's own thread count
    options.inter_op_num_threads = 1
    # (idle workers would spin on the cores numpy and BLAS need between calls)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: its notes on graph clean-ups are not the user's
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _as_key(tree: Any) -> Any:
    """A structure tree as a hashable key."""
    if isinstance(tree, dict):
        return (tree["kind"], tuple(_as_key(item) for item in tree["items"]))
    return tree


def _batchless(exact: tuple[Any, ...]) -> tuple[Any, ...]:
    """The signature less every input's first axis (the exported graph's dynamic batch)."""
    tree, leaves = exact
    return tree, tuple((shape[1:], len(shape), dtype) for shape, dtype in leaves)


def _parameters(block: Block) -> list[Any]:
    """Every parameter of the block's tree, in order (a shared one as often as it is held): a
    child added, removed or replaced since a session was built changes this list."""
    return [parameter for _, child in block.named_blocks() for parameter in child._reg_params.values()]


def _snapshot(block: Block) -> list[_Weight]:
    weights = []
    for parameter in _parameters(block):
        weights.append(_Weight(parameter, _bits(parameter.array()).copy()))
    return weights


def _unchanged(block: Block, weights: list[_Weight]) -> bool:
    """Whether the block holds the same parameters, each with the same bits."""
    parameters = _parameters(block)
    if len(parameters) != len(weights):
        return False
    if any(p is not w.parameter for p, w in zip(parameters, weights, strict=True)):
        return False
    return all(np.array_equal(_bits(weight.parameter.array()), weight.bits) for weight in weights)


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's bits (``derived.bits_of``), of a contiguous copy where it is not one, or as
    bytes where its item size has no unsigned type."""
    flat = np.ascontiguousarray(array)
    bits = bits_of(flat)
    return bits if bits is not None else flat.reshape(-1).view(np.uint8)
