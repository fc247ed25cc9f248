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

GroupNorm has no row on purpose: modelpack's (MXNet's) holds one gamma and beta per group,
torch's one per channel, and modelpack's config does not know the channel count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
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
    params: tuple[Param, ...] | Callable[[Config], tuple[Param, ...]] = ()  # fixed, or by config
    ignored: tuple[str, ...] = ()  # torch state entries modelpack does not keep

    def params_for(self, config: Config) -> tuple[Param, ...]:
        """The parameter names of a layer with this config (an RNN's depend on its layers)."""
        return self.params(config) if callable(self.params) else self.params


def refuse(what: str) -> UnsupportedBlockError:
    return UnsupportedBlockError(what)


def _sizes(value: Any, dims: int, what: str) -> list[int]:
    """An int or a tuple of ``dims`` ints (torch's size arguments) as a list."""
    items = [int(value)] * dims if isinstance(value, int) else [int(v) for v in value]
    if len(items) != dims:
        raise refuse(f"{what}={value!r} is not {dims}-D")
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
        if found != value and not (isinstance(value, tuple) and _same_sizes(found, value)):
            raise refuse(f"{name}={found!r} (only {value!r} has a modelpack equivalent)")


def _same_sizes(found: Any, value: tuple[int, ...]) -> bool:
    try:
        return tuple(_sizes(found, len(value), "")) == value
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
def _pool_config(m: Any, dims: int, average: bool) -> Config:
    if average:
        _require(m, divisor_override=None)
    else:
        _require(m, dilation=(1,) * dims, return_indices=False)
    kernel = _sizes(m.kernel_size, dims, "kernel_size")
    config = {
        "pool_size": kernel,
        "strides": _sizes(m.stride if m.stride else kernel, dims, "stride"),
        "padding": _sizes(m.padding, dims, "padding"),
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


def _global_config(dims: int) -> Callable[[Any], Config]:
    def config(m: Any) -> Config:
        _require(m, output_size=(1,) * dims, return_indices=False)
        return {}

    return config


def _global_build(torch_class: str, c: Config) -> tuple[str, Config]:
    return torch_class, {"output_size": 1}


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


def _swish_build(c: Config) -> tuple[str, Config]:
    if c["beta"] != 1.0:
        raise refuse(f"beta={c['beta']} (torch's SiLU is beta 1)")
    return "SiLU", {}


def _flatten_config(m: Any) -> Config:
    _require(m, start_dim=1, end_dim=-1)
    return {}


def _recurrent_config(mode: str) -> Callable[[Any], Config]:
    def config(m: Any) -> Config:
        c: Config = {
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "layout": "NTC" if m.batch_first else "TNC",
            "dropout": float(m.dropout),
            "bidirectional": bool(m.bidirectional),
            "input_size": m.input_size,
            "dtype": _dtype(m.weight_ih_l0),
        }
        if mode == "RNN":
            c["activation"] = m.nonlinearity
        if mode == "LSTM" and m.proj_size:
            c["projection_size"] = m.proj_size
        return c

    return config


def _recurrent_build(mode: str) -> Callable[[Config], tuple[str, Config]]:
    def build(c: Config) -> tuple[str, Config]:
        if c.get("use_sequence_length") or c.get("state_clip_min") is not None or not c["input_size"]:
            raise refuse(
                f"use_sequence_length={c.get('use_sequence_length')}, state_clip_min="
                f"{c.get('state_clip_min')}, input_size={c['input_size']} (torch has no sequence lengths "
                "or state clipping, and needs the input size)"
            )
        kwargs: Config = {
            "input_size": c["input_size"],
            "hidden_size": c["hidden_size"],
            "num_layers": c["num_layers"],
            "batch_first": c["layout"] == "NTC",
            "dropout": c["dropout"],
            "bidirectional": c["bidirectional"],
        }
        if mode == "RNN":
            kwargs["nonlinearity"] = c["activation"]
        if mode == "LSTM" and c.get("projection_size"):
            kwargs["proj_size"] = c["projection_size"]
        return mode, kwargs

    return build


def _recurrent_params(c: Config) -> tuple[Param, ...]:
    """Gluon's ``l0_i2h_weight`` (``r`` backwards) is torch's ``weight_ih_l0`` (``_reverse``);
    both order the gates alike (LSTM: i, f, g, o; GRU: r, z, n). torch's ``bias=False`` has
    zero biases in modelpack."""
    params = []
    for layer in range(c["num_layers"]):
        for direction, suffix in enumerate(("", "_reverse")[: 2 if c["bidirectional"] else 1]):
            ours, theirs = f"{'lr'[direction]}{layer}", f"l{layer}{suffix}"
            params += [
                Param(f"{ours}_i2h_weight", f"weight_ih_{theirs}"),
                Param(f"{ours}_h2h_weight", f"weight_hh_{theirs}"),
                Param(f"{ours}_i2h_bias", f"bias_ih_{theirs}", fill="zeros"),
                Param(f"{ours}_h2h_bias", f"bias_hh_{theirs}", fill="zeros"),
            ]
            if c.get("projection_size"):
                params.append(Param(f"{ours}_h2r_weight", f"weight_hr_{theirs}"))
    return tuple(params)


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
    *(
        row
        for d in (1, 2, 3)
        for row in (
            Row(
                f"Conv{d}D",
                (f"Conv{d}d", f"ActivatedConv{d}d"),
                partial(_conv_config, dims=d),
                _conv_build(f"Conv{d}d"),
                _WEIGHT_BIAS,
            ),
            Row(
                f"MaxPool{d}D",
                (f"MaxPool{d}d",),
                partial(_pool_config, dims=d, average=False),
                _pool_build(f"MaxPool{d}d"),
            ),
            Row(
                f"AvgPool{d}D",
                (f"AvgPool{d}d",),
                partial(_pool_config, dims=d, average=True),
                _pool_build(f"AvgPool{d}d"),
            ),
            Row(
                f"GlobalAvgPool{d}D",
                (f"AdaptiveAvgPool{d}d",),
                _global_config(d),
                partial(_global_build, f"AdaptiveAvgPool{d}d"),
            ),
            Row(
                f"GlobalMaxPool{d}D",
                (f"AdaptiveMaxPool{d}d",),
                _global_config(d),
                partial(_global_build, f"AdaptiveMaxPool{d}d"),
            ),
        )
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
    Row("Identity", ("Identity",), lambda m: {}, lambda c: ("Identity", {})),
    *(
        Row(mode, (mode,), _recurrent_config(mode), _recurrent_build(mode), _recurrent_params)
        for mode in ("RNN", "LSTM", "GRU")
    ),
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
    Row("SELU", ("SELU",), lambda m: {}, lambda c: ("SELU", {})),
    Row(
        "PReLU",
        ("PReLU",),
        lambda m: {"in_channels": m.num_parameters, "dtype": _dtype(m.weight)},
        lambda c: ("PReLU", {"num_parameters": c["in_channels"]}),
        (Param("alpha", "weight"),),
    ),
    # modelpack → torch only: torch's GELU and SiLU read back as Activation("gelu"/"silu")
    Row(
        "GELU",
        (),
        lambda m: {},
        lambda c: ("GELU", {"approximate": "none" if c["approximation"] == "erf" else "tanh"}),
    ),
    Row("Swish", (), lambda m: {}, _swish_build),
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
        params = row.params_for(block.get_config())  # type: ignore[attr-defined]
        siblings = [prefix + p.torch for p in params if p.fill is None]
        for param in params:
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
        shaped = like if like is not None else present[0] if present else None
        if shaped is not None:
            result[name] = (np.ones_like if fill == "ones" else np.zeros_like)(shaped)
    return result
