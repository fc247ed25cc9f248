"""How each layer family translates between torch and modelpack, for the table in ``layers``:
a torch module's attributes → the modelpack config (``*_config``), a config → the torch class
and its keyword arguments (``*_build``), and parameter names (``Param``). Nothing here imports
torch: modules are read by attribute, classes named. What cannot be translated exactly is
refused (``refuse``) naming the attribute and its value.

This module holds what every family uses (``Param``, ``refuse``, ``dtype_of``)
and the activation, dense, convolution, pooling and smaller families; the normalisation
layers are in ``translations_norm`` and the recurrent ones in ``translations_recurrent``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...errors import UnsupportedBlockError

__all__ = ["Config", "Param", "ACTIVATION_CLASSES", "refuse", "dtype_of"]

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


def refuse(what: str) -> UnsupportedBlockError:
    return UnsupportedBlockError(what)


def _sizes(value: Any, dims: int, what: str) -> list[int]:
    """An int or a tuple of ``dims`` ints (torch's size arguments) as a list."""
    items = [int(value)] * dims if isinstance(value, int) else [int(v) for v in value]
    if len(items) != dims:
        raise refuse(f"{what}={value!r} is not {dims}-D")
    return items


def dtype_of(tensor: Any) -> str:
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


def activation_config(module: Any) -> Config:
    _require(module, approximate="none", beta=1.0)
    if getattr(module, "threshold", 20.0) < 20.0:  # Softplus is x above it: exact to 2e-9 from 20 on
        raise refuse(f"threshold={module.threshold!r} (Softplus is translated exactly only from 20 on)")
    return {"activation": _ACTIVATION_NAMES[type(module).__name__]}


# -- dense and convolution -----------------------------------------------------------------------
def dense_config(m: Any) -> Config:
    return {
        "units": m.out_features,
        "in_units": m.in_features,
        "use_bias": m.bias is not None,
        "flatten": bool(getattr(m, "flatten", False)),
        "activation": getattr(m, "activation_name", None),
        "dtype": dtype_of(m.weight),
    }


def dense_build(c: Config) -> tuple[str, Config]:
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


def conv_config(m: Any, dims: int) -> Config:
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
        "dtype": dtype_of(m.weight),
    }


def conv_build(torch_class: str) -> Callable[[Config], tuple[str, Config]]:
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


def conv_transpose_config(m: Any, dims: int) -> Config:
    """torch's ConvTranspose has modelpack's weight layout (in, out / groups, *kernel) and
    output size rule, output_padding included."""
    if any(p >= s for p, s in zip(m.output_padding, m.stride, strict=True)):
        raise refuse(
            f"output_padding={tuple(m.output_padding)} is not smaller than stride={tuple(m.stride)} "
            "(torch allows up to the dilation; modelpack, as MXNet, only below the stride)"
        )
    return {**conv_config(m, dims), "output_padding": [int(p) for p in m.output_padding]}


def conv_transpose_build(torch_class: str) -> Callable[[Config], tuple[str, Config]]:
    plain = conv_build(torch_class)

    def build(c: Config) -> tuple[str, Config]:
        class_name, kwargs = plain(c)
        return class_name, {**kwargs, "output_padding": tuple(c["output_padding"])}

    return build


def reflection_pad_config(m: Any) -> Config:
    left, right, top, bottom = (int(p) for p in m.padding)  # torch: the last axis first
    return {"padding": [0, 0, 0, 0, top, bottom, left, right]}


def reflection_pad_build(c: Config) -> tuple[str, Config]:
    top, bottom, left, right = c["padding"][4:]
    return "ReflectionPad2d", {"padding": (left, right, top, bottom)}


# -- pooling -------------------------------------------------------------------------------------
def pool_config(m: Any, dims: int, average: bool) -> Config:
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


def pool_build(torch_class: str) -> Callable[[Config], tuple[str, Config]]:
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


def global_config(dims: int) -> Callable[[Any], Config]:
    def config(m: Any) -> Config:
        _require(m, output_size=(1,) * dims, return_indices=False)
        return {}

    return config


def global_build(torch_class: str, c: Config) -> tuple[str, Config]:
    return torch_class, {"output_size": 1}


# -- the rest ------------------------------------------------------------------------------------
DROPOUT_AXES = {"Dropout": [], "Dropout1d": [2], "Dropout2d": [2, 3]}


def dropout_build(c: Config) -> tuple[str, Config]:
    for torch_class, axes in DROPOUT_AXES.items():
        if list(c["axes"]) == axes:
            return torch_class, {"p": c["rate"]}
    raise refuse(f"Dropout axes={c['axes']} (torch shares masks over [], [2] or [2, 3] only)")


def embedding_config(m: Any) -> Config:
    _require(m, max_norm=None)
    return {"input_dim": m.num_embeddings, "output_dim": m.embedding_dim, "dtype": dtype_of(m.weight)}


def swish_build(c: Config) -> tuple[str, Config]:
    if c["beta"] != 1.0:
        raise refuse(f"beta={c['beta']} (torch's SiLU is beta 1)")
    return "SiLU", {}


def flatten_config(m: Any) -> Config:
    _require(m, start_dim=1, end_dim=-1)
    return {}
