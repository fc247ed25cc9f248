"""``modelpack.npx``: MXNet's ``npx`` as Dive into Deep Learning uses it, without MXNet.

- ``save``/``load``: the public verbs under MXNet's names. ``load`` reads what ``save`` writes
  (a modelpack archive) and what MXNet's ``npx.save`` and Gluon's ``save_parameters`` wrote (a
  list, or a dict when the arrays are named).
- The operators (``relu``, ``sigmoid``, ``softmax`` with ``length``, ``log_softmax``,
  ``batch_dot``, ``sequence_mask``, ``one_hot``, ``pick``, ``topk``, ``batch_flatten``,
  ``layer_norm``, ``dropout``, ``embedding``, ``fully_connected``, ``smooth_l1``,
  ``activation``, ``leaky_relu``): ops of the one op table (``nn.ops``), so they run on numpy
  arrays and trace inside a ``forward``; MXNet's calling conventions.
- ``convolution`` and ``pooling`` (``npx_ops.spatial``): MXNet's arguments and defaults, computed
  by the convolution and pooling layers' kernels and differentiable inside ``autograd.record()``
  (data, weight and bias); not ops of the op table, so inside a traced ``forward`` they are
  refused with ``TraceError`` naming the layer to use (``nn.Conv2D``, ``nn.MaxPool2D``, ...).
- ``multibox_prior``, ``multibox_target``, ``multibox_detection``, ``roi_pooling``
  (``npx_ops.detection``): MXNet 1.9.1's CPU operators in float32, forward only: inside
  ``autograd.record()`` they read recorded values and give arrays with no gradient path (MXNet
  defines none for the multibox ones); refused inside a traced ``forward`` too.
- ``set_np``, ``reset_np``, ``waitall``, ``cpu``, ``gpu``, ``num_gpus``: there is one mode and
  one device (numpy on the CPU), so these only let chapter code run unchanged.

>>> from modelpack import npx
>>> npx.save("x-files", [x, y]); x2, y2 = npx.load("x-files")  # doctest: +SKIP
>>> npx.sequence_mask(X, valid_lens, True, value=-1e6, axis=1)  # doctest: +SKIP
>>> npx.convolution(data=X, weight=W, bias=b, kernel=(3, 3), num_filter=20)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from .api import load, save
from .errors import UnsupportedFeatureError, UsageError
from .nn import functional as F
from .nn.devices import Device, cpu, on_device
from .npx_ops import convolution, multibox_detection, multibox_prior, multibox_target, pooling, roi_pooling

__all__ = [
    "load", "save",
    "activation", "batch_dot", "batch_flatten", "dropout", "embedding", "fully_connected", "layer_norm",
    "leaky_relu", "log_softmax", "one_hot", "pick", "relu", "sequence_mask", "sigmoid", "smooth_l1",
    "softmax", "topk",
    "convolution", "pooling", "multibox_prior", "multibox_target", "multibox_detection", "roi_pooling",
    "set_np", "reset_np", "waitall", "cpu", "gpu", "num_gpus",
]


def _mxnet_result(op: Callable[..., Any]) -> Callable[..., Any]:
    """``op`` giving an ``NDArray`` where it gives a numpy array (MXNet's ``asnumpy``, ``ctx``);
    autograd's Variables and tracing's stand-ins pass through unchanged."""

    @functools.wraps(op)
    def run(*args: Any, **kwargs: Any) -> Any:
        return on_device(op(*args, **kwargs))

    return run


# The op table's ops under npx's names (``batch_flatten`` is ``F.flatten``).
batch_dot = _mxnet_result(F.batch_dot)
batch_flatten = _mxnet_result(F.flatten)
dropout = _mxnet_result(F.dropout)
embedding = _mxnet_result(F.embedding)
fully_connected = _mxnet_result(F.fully_connected)
layer_norm = _mxnet_result(F.layer_norm)
log_softmax = _mxnet_result(F.log_softmax)
one_hot = _mxnet_result(F.one_hot)
pick = _mxnet_result(F.pick)
relu = _mxnet_result(F.relu)
sequence_mask = _mxnet_result(F.sequence_mask)
sigmoid = _mxnet_result(F.sigmoid)
smooth_l1 = _mxnet_result(F.smooth_l1)
softmax = _mxnet_result(F.softmax)
topk = _mxnet_result(F.topk)

_ACT_TYPES = ("relu", "sigmoid", "tanh", "softrelu", "softsign", "gelu", "silu")


def activation(data: Any, act_type: str = "relu") -> Any:
    """``npx.activation``: the activation op named ``act_type``."""
    if act_type not in _ACT_TYPES:
        raise UsageError(f"unknown act_type {act_type!r}; known: {', '.join(_ACT_TYPES)}")
    return on_device(getattr(F, act_type)(data))


def leaky_relu(data: Any, act_type: str = "leaky", slope: float = 0.25) -> Any:
    """``npx.leaky_relu`` for ``act_type`` ``leaky``, ``elu`` and ``gelu``."""
    if act_type == "leaky":
        return on_device(F.leaky_relu(data, alpha=float(slope)))
    if act_type == "elu":
        return on_device(F.elu(data, alpha=float(slope)))
    if act_type == "gelu":
        return on_device(F.gelu(data))
    raise UsageError(f"leaky_relu: act_type {act_type!r} is not supported (leaky, elu, gelu)")


def set_np(shape: bool = True, array: bool = True, dtype: bool = False) -> None:
    """MXNet's numpy mode is the only mode here; nothing to switch."""


def reset_np() -> None:
    """Nothing to reset (see ``set_np``)."""


def waitall() -> None:
    """Computation is synchronous; nothing to wait for."""


def gpu(device_id: int = 0) -> Device:
    """A GPU's name, as MXNet makes one without a GPU (d2l prints ``cpu(), gpu(), gpu(1)``);
    there are none here (``num_gpus()`` is 0), so placing an array on it is refused."""
    return Device(f"gpu({device_id})")


def num_gpus() -> int:
    """0: modelpack computes with numpy on the CPU."""
    return 0


def __getattr__(name: str) -> Any:
    """Any other MXNet npx name (``deconvolution``, ``batch_norm``, ``box_nms``, ...)."""
    raise UnsupportedFeatureError.missing(
        __name__,
        name,
        f"npx has {', '.join(sorted(__all__))}; write it with numpy (modelpack.np; inside "
        "autograd.record() numpy's functions are recorded) or use modelpack.nn's layers "
        "(nn.Conv2DTranspose for deconvolution, nn.BatchNorm for batch_norm, ...)",
    )
