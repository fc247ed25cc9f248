"""The one table of layer types that modelpack and torch both have: a row per type.

A row names the modelpack type and the ``torch.nn`` classes that mean it, turns a torch
module into the modelpack config (``config``) and a config into a torch class and its
keyword arguments (``build``), and maps parameter names (``params``; modelpack's name first).
``bridge`` walks modules with this table, and ``rename_state_dict`` maps a state_dict's names
onto a modelpack model with it, so adding a layer type is adding one row. A row whose
modelpack type is not registered (a layer that has not landed yet) is skipped.

Nothing here imports torch: a ``config`` function reads a module's attributes, and classes
are named, to be resolved by ``bridge``. A row refuses what it cannot translate faithfully by
raising ``UnsupportedBlockError`` with the attribute and its value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import UnsupportedBlockError
from ...nn import registry
from ...nn.block import Block

__all__ = ["Param", "Row", "ROWS", "ROWS_BY_TYPE", "ACTIVATION_CLASSES", "rename_state_dict"]

Config = dict[str, Any]


@dataclass(frozen=True)
class Param:
    """A parameter both sides hold: modelpack's name, torch's name, and what stands in for it
    (``fill``: "ones"/"zeros") when the torch module has none or the config's flag ``when``
    says modelpack ignores it (BatchNorm's gamma with ``scale=False``)."""

    modelpack: str
    torch: str
    fill: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class Row:
    """One layer type: modelpack type ↔ torch classes, config both ways, parameter names."""

    modelpack: str
    torch: tuple[str, ...]
    config: Callable[[Any], Config]
    build: Callable[[Config], tuple[str, Config]]
    params: tuple[Param, ...] = ()
    ignored: tuple[str, ...] = ()  # torch state entries modelpack does not keep


def refuse(what: str) -> UnsupportedBlockError:
    return UnsupportedBlockError(what)


def _pair(value: Any, what: str) -> list[int]:
    items = [int(value)] * 2 if isinstance(value, int) else [int(v) for v in value]
    if len(items) != 2:
        raise refuse(f"{what}={value!r} is not 2-D")
    return items


def _dtype(tensor: Any) -> str:
    name = str(tensor.dtype).removeprefix("torch.")
    if name not in ("float16", "float32", "float64"):
        raise refuse(f"parameters of dtype {name} (modelpack layers hold float16, float32 or float64)")
    return name


def _require(module: Any, **expected: Any) -> None:
    """Attributes that must have their default value for the translation to be exact."""
    for name, value in expected.items():
        found = getattr(module, name, value)
        if found != value and not (isinstance(value, tuple) and _same_pair(found, value)):
            raise refuse(f"{name}={found!r} (only {value!r} has a modelpack equivalent)")


def _same_pair(found: Any, value: tuple[int, ...]) -> bool:
    try:
        return tuple(_pair(found, "")) == value
    except (TypeError, ValueError, UnsupportedBlockError):
        return False


# -- activations: modelpack's name ↔ torch's class ----------------------------------------------
ACTIVATION_CLASSES: dict[str, str] = {
    "relu": "ReLU",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    "softrelu": "Softplus",
    "softsign": "Softsign",
    "gelu": "GELU",
    "silu": "SiLU",
}
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATION_CLASSES.items()}


def _activation_config(module: Any) -> Config:
    _require(module, approximate="none", beta=1.0)
    if getattr(module, "threshold", 20.0) < 20.0:  # Softplus is x above it: exact to 2e-9 from 20 on
        raise refuse(f"threshold={module.threshold!r} (Softplus is translated exactly only from 20 on)")
    return {"activation": _ACTIVATION_NAMES[type(module).__name__]}


# -- dense and convolution -----------------------------------------------------------------------
def _dense_config(m: Any) -> Config:
    return {
        "units": m.out_features,
        "in_units": m.in_features,
        "use_bias": m.bias is not None,
        "flatten": bool(getattr(m, "flatten", False)),
        "activation": getattr(m, "activation_name", None),
        "dtype": _dtype(m.weight),
    }


def _dense_build(c: Config) -> tuple[str, Config]:
    if not c["in_units"]:
        raise refuse("in_units is not known yet (call the network on an input first)")
    kwargs = {"in_features": c["in_units"], "out_features": c["units"], "bias": c["use_bias"]}
    if c["flatten"] or c["activation"]:
        return "DenseLinear", {**kwargs, "flatten": c["flatten"], "activation": c["activation"]}
    return "Linear", kwargs


def _conv_padding(m: Any, dims: int) -> list[int]:
    if m.padding == "valid":
        return [0] * dims
    if m.padding == "same":
        spans = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size, strict=True)]
        if any(span % 2 for span in spans):
            raise refuse(f"padding='same' with kernel_size={m.kernel_size} pads unevenly")
        return [span // 2 for span in spans]
    return [int(p) for p in m.padding]


def _conv_config(m: Any, dims: int) -> Config:
    _require(m, padding_mode="zeros")
    if len(m.kernel_size) != dims:
        raise refuse(f"kernel_size={m.kernel_size!r} is not {dims}-D")
    return {
        "channels": m.out_channels,
        "kernel_size": list(m.kernel_size),
        "strides": list(m.stride),
        "padding": _conv_padding(m, dims),
        "dilation": list(m.dilation),
        "groups": m.groups,
        "activation": getattr(m, "activation_name", None),
        "use_bias": m.bias is not None,
        "in_channels": m.in_channels,
        "dtype": _dtype(m.weight),
    }


def _conv_build(torch_class: str) -> Callable[[Config], tuple[str, Config]]:
    def build(c: Config) -> tuple[str, Config]:
        if not c["in_channels"]:
            raise refuse("in_channels is not known yet (call the network on an input first)")
        kwargs = {
            "in_channels": c["in_channels"],
            "out_channels": c["channels"],
            "kernel_size": tuple(c["kernel_size"]),
            "stride": tuple(c["strides"]),
            "padding": tuple(c["padding"]),
            "dilation": tuple(c["dilation"]),
            "groups": c["groups"],
            "bias": c["use_bias"],
        }
        if c.get("activation"):
            return f"Activated{torch_class}", {**kwargs, "activation": c["activation"]}
        return torch_class, kwargs

    return build


# -- pooling -------------------------------------------------------------------------------------
def _pool_config(m: Any, average: bool) -> Config:
    if average:
        _require(m, divisor_override=None)
    else:
        _require(m, dilation=(1, 1), return_indices=False)
    kernel = _pair(m.kernel_size, "kernel_size")
    config = {
        "pool_size": kernel,
        "strides": _pair(m.stride if m.stride else kernel, "stride"),
        "padding": _pair(m.padding, "padding"),
        "ceil_mode": bool(m.ceil_mode),
    }
    return {**config, "count_include_pad": bool(m.count_include_pad)} if average else config


def _pool_build(torch_class: str) -> Callable[[Config], tuple[str, Config]]:
    def build(c: Config) -> tuple[str, Config]:
        kwargs = {
            "kernel_size": tuple(c["pool_size"]),
            "stride": tuple(c["strides"] or c["pool_size"]),
            "padding": tuple(c["padding"]),
            "ceil_mode": c["ceil_mode"],
        }
        if "count_include_pad" in c:
            kwargs["count_include_pad"] = c["count_include_pad"]
        return torch_class, kwargs

    return build


def _global_config(m: Any) -> Config:
    _require(m, output_size=(1, 1), return_indices=False)
    return {}


# -- normalisation -------------------------------------------------------------------------------
def _batchnorm_config(m: Any) -> Config:
    if not m.track_running_stats:
        raise refuse("track_running_stats=False (normalises with batch statistics even at inference)")
    if m.momentum is None:
        raise refuse("momentum=None (a cumulative average; modelpack keeps an exponential one)")
    affine = bool(m.affine)
    return {
        "axis": 1,
        "momentum": 1.0 - float(m.momentum),
        "epsilon": float(m.eps),
        "center": affine,
        "scale": affine,
        "use_global_stats": False,
        "in_channels": m.num_features,
        "dtype": _dtype(m.running_mean),
    }


def _batchnorm_build(c: Config) -> tuple[str, Config]:
    if c["axis"] != 1 or c["use_global_stats"] or not c["in_channels"]:
        raise refuse(
            f"axis={c['axis']}, use_global_stats={c['use_global_stats']}, in_channels="
            f"{c['in_channels']} (torch needs axis=1, use_global_stats=False, known channels)"
        )
    return "AnyRankBatchNorm", {
        "num_features": c["in_channels"],
        "eps": c["epsilon"],
        "momentum": 1.0 - c["momentum"],
        "affine": True,
    }


def _layernorm_config(m: Any) -> Config:
    if len(m.normalized_shape) != 1:
        raise refuse(f"normalized_shape={tuple(m.normalized_shape)} (modelpack normalises one axis)")
    affine = bool(m.elementwise_affine)
    return {
        "axis": -1,
        "epsilon": float(m.eps),
        "center": affine and m.bias is not None,
        "scale": affine,
        "in_channels": m.normalized_shape[0],
        "dtype": _dtype(m.weight) if affine else "float32",
    }


def _layernorm_build(c: Config) -> tuple[str, Config]:
    if c["axis"] != -1 or not c["in_channels"]:
        raise refuse(
            f"axis={c['axis']}, in_channels={c['in_channels']} (torch normalises the last "
            "axis, of a known size)"
        )
    return "LayerNorm", {
        "normalized_shape": (c["in_channels"],),
        "eps": c["epsilon"],
        "elementwise_affine": c["scale"] or c["center"],
        "bias": c["center"],
    }


def _groupnorm_config(m: Any) -> Config:
    affine = bool(m.affine)
    return {
        "num_groups": m.num_groups,
        "epsilon": float(m.eps),
        "center": affine,
        "scale": affine,
        "in_channels": m.num_channels,
        "dtype": _dtype(m.weight) if affine else "float32",
    }


def _groupnorm_build(c: Config) -> tuple[str, Config]:
    if not c["in_channels"]:
        raise refuse("in_channels is not known yet (call the network on an input first)")
    return "GroupNorm", {"num_groups": c["num_groups"], "num_channels": c["in_channels"], "eps": c["epsilon"]}


# -- the rest ------------------------------------------------------------------------------------
_DROPOUT_AXES = {"Dropout": [], "Dropout1d": [2], "Dropout2d": [2, 3]}


def _dropout_build(c: Config) -> tuple[str, Config]:
    for torch_class, axes in _DROPOUT_AXES.items():
        if list(c["axes"]) == axes:
            return torch_class, {"p": c["rate"]}
    raise refuse(f"Dropout axes={c['axes']} (torch shares masks over [], [2] or [2, 3] only)")


def _embedding_config(m: Any) -> Config:
    _require(m, max_norm=None)
    return {"input_dim": m.num_embeddings, "output_dim": m.embedding_dim, "dtype": _dtype(m.weight)}


def _flatten_config(m: Any) -> Config:
    _require(m, start_dim=1, end_dim=-1)
    return {}


_WEIGHT_BIAS = (Param("weight", "weight"), Param("bias", "bias"))
_NORM = (
    Param("gamma", "weight", fill="ones", when="scale"),
    Param("beta", "bias", fill="zeros", when="center"),
)
# modelpack's BatchNorm adds beta even with center=False (it stays at its initial zeros)
_BATCHNORM = (
    Param("gamma", "weight", fill="ones", when="scale"),
    Param("beta", "bias", fill="zeros"),
    Param("running_mean", "running_mean"),
    Param("running_var", "running_var"),
)

_ALL_ROWS = (
    Row("Sequential", ("Sequential",), lambda m: {}, lambda c: ("Sequential", {})),
    Row("Dense", ("Linear", "DenseLinear"), _dense_config, _dense_build, _WEIGHT_BIAS),
    Row(
        "Conv1D",
        ("Conv1d", "ActivatedConv1d"),
        lambda m: _conv_config(m, 1),
        _conv_build("Conv1d"),
        _WEIGHT_BIAS,
    ),
    Row(
        "Conv2D",
        ("Conv2d", "ActivatedConv2d"),
        lambda m: _conv_config(m, 2),
        _conv_build("Conv2d"),
        _WEIGHT_BIAS,
    ),
    Row("MaxPool2D", ("MaxPool2d",), lambda m: _pool_config(m, False), _pool_build("MaxPool2d")),
    Row("AvgPool2D", ("AvgPool2d",), lambda m: _pool_config(m, True), _pool_build("AvgPool2d")),
    Row(
        "GlobalAvgPool2D",
        ("AdaptiveAvgPool2d",),
        _global_config,
        lambda c: ("AdaptiveAvgPool2d", {"output_size": 1}),
    ),
    Row(
        "GlobalMaxPool2D",
        ("AdaptiveMaxPool2d",),
        _global_config,
        lambda c: ("AdaptiveMaxPool2d", {"output_size": 1}),
    ),
    Row(
        "BatchNorm",
        ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "AnyRankBatchNorm"),
        _batchnorm_config,
        _batchnorm_build,
        _BATCHNORM,
        ignored=("num_batches_tracked",),
    ),
    Row("LayerNorm", ("LayerNorm",), _layernorm_config, _layernorm_build, _NORM),
    Row("GroupNorm", ("GroupNorm",), _groupnorm_config, _groupnorm_build, _NORM),
    Row(
        "Embedding",
        ("Embedding",),
        _embedding_config,
        lambda c: ("Embedding", {"num_embeddings": c["input_dim"], "embedding_dim": c["output_dim"]}),
        (Param("weight", "weight"),),
    ),
    Row(
        "Dropout",
        tuple(_DROPOUT_AXES),
        lambda m: {"rate": float(m.p), "axes": _DROPOUT_AXES[type(m).__name__]},
        _dropout_build,
    ),
    Row("Flatten", ("Flatten",), _flatten_config, lambda c: ("Flatten", {})),
    Row(
        "Activation",
        tuple(ACTIVATION_CLASSES.values()),
        _activation_config,
        lambda c: (ACTIVATION_CLASSES[c["activation"]], {}),
    ),
    Row(
        "LeakyReLU",
        ("LeakyReLU",),
        lambda m: {"alpha": float(m.negative_slope)},
        lambda c: ("LeakyReLU", {"negative_slope": c["alpha"]}),
    ),
    Row("ELU", ("ELU",), lambda m: {"alpha": float(m.alpha)}, lambda c: ("ELU", {"alpha": c["alpha"]})),
)

# Rows whose modelpack type is registered; the others wait for their layer to land.
ROWS: tuple[Row, ...] = tuple(row for row in _ALL_ROWS if row.modelpack in registry.known_layers())
ROWS_BY_TYPE: dict[str, Row] = {row.modelpack: row for row in ROWS}


def rename_state_dict(arrays: Mapping[str, np.ndarray], net: Block) -> dict[str, np.ndarray]:
    """A state_dict's arrays under ``net``'s structured names, by each layer's row.

    Names outside any row's layers are kept (for ``set_parameters`` to report); torch-only
    entries (``num_batches_tracked``) are dropped; a norm layer whose torch module had no
    affine parameters gets gamma = 1, beta = 0, shaped like its running statistics.
    """
    renamed: dict[str, str] = {}
    dropped: set[str] = set()
    fills: dict[str, tuple[str, np.ndarray | None, list[str]]] = {}  # name -> (fill, like, siblings)
    for path, block in net.named_blocks():
        row = ROWS_BY_TYPE.get(registry.type_name_of(block) or "")
        if row is None:
            continue
        prefix = f"{path}." if path else ""
        dropped.update(prefix + name for name in row.ignored)
        siblings = [prefix + p.torch for p in row.params if p.fill is None]
        for param in row.params:
            renamed[prefix + param.torch] = prefix + param.modelpack
            own = block.params.get(param.modelpack)
            if param.fill is not None and prefix + param.torch not in arrays and own is not None:
                like = np.zeros(own.shape, own.dtype) if all(own.shape) else None
                fills[prefix + param.modelpack] = (param.fill, like, siblings)
    result = {renamed.get(name, name): array for name, array in arrays.items() if name not in dropped}
    for name, (fill, like, siblings) in fills.items():
        present = [arrays[s] for s in siblings if s in arrays]
        if siblings and not present:
            continue  # the layer is absent from the file: set_parameters reports it
        shaped = present[0] if present else like
        if shaped is not None:
            result[name] = (np.ones_like if fill == "ones" else np.zeros_like)(shaped)
    return result
