"""The one table of layer types that modelpack and torch both have: a row per type.

A row names the modelpack type and the ``torch.nn`` classes that mean it, turns a torch
module into the modelpack config (``config``) and a config into a torch class and its
keyword arguments (``build``), and maps parameter names (``params``; modelpack's name first).
``bridge`` walks modules with this table, and ``rename_state_dict`` maps a state_dict's names
onto a modelpack model with it, so adding a layer type is adding one row. A row whose
modelpack type is not registered (a layer that has not landed yet) is skipped.

The functions a row names live in ``translations`` (the shared pieces and most families),
``translations_norm`` and ``translations_recurrent``. Nothing here imports torch: a
``config`` function reads a module's attributes, and classes are named, to be resolved by
``bridge``.

GroupNorm's row is special: modelpack's (MXNet's) holds one gamma and beta per group, torch's
one per channel, and modelpack's config does not know the channel count. So ``to_torch``
writes the bridge's ``PerGroupNorm`` (per-group affine, any channel count), and ``from_torch``
of a torch GroupNorm goes through ``bridge`` (per-group values when its affine is constant
within each group, else a GroupNorm followed by a per-channel scale and shift).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ...nn import registry
from ...nn.block import Block
from .translations import (
    ACTIVATION_CLASSES,
    DROPOUT_AXES,
    Config,
    Param,
    activation_config,
    conv_build,
    conv_config,
    conv_transpose_build,
    conv_transpose_config,
    dense_build,
    dense_config,
    dropout_build,
    dtype_of,
    embedding_config,
    flatten_config,
    global_build,
    global_config,
    pool_build,
    pool_config,
    reflection_pad_build,
    reflection_pad_config,
    swish_build,
)
from .translations_norm import (
    batchnorm_build,
    batchnorm_config,
    groupnorm_build,
    groupnorm_config,
    instancenorm_build,
    instancenorm_config,
    layernorm_build,
    layernorm_config,
)
from .translations_recurrent import recurrent_build, recurrent_config, recurrent_params

__all__ = ["Param", "Row", "ROWS", "ROWS_BY_TYPE", "ACTIVATION_CLASSES", "rename_state_dict"]

Build = Callable[[Config], tuple[str, Config]]  # a config -> the torch class and its arguments


@dataclass(frozen=True)
class Row:
    """One layer type: modelpack type ↔ torch classes, config both ways, parameter names."""

    modelpack: str
    torch: tuple[str, ...]
    config: Callable[[Any], Config]
    build: Build
    params: tuple[Param, ...] | Callable[[Config], tuple[Param, ...]] = ()  # fixed, or by config
    ignored: tuple[str, ...] = ()  # torch state entries modelpack does not keep

    def params_for(self, config: Config) -> tuple[Param, ...]:
        """The parameter names of a layer with this config (an RNN's depend on its layers)."""
        return self.params(config) if callable(self.params) else self.params


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

def _spatial_rows(d: int) -> tuple[Row, ...]:
    """The convolution and pooling rows of ``d`` spatial dimensions: modelpack's names end in
    ``{d}D``, torch's in ``{d}d``; a convolution also reads the bridge's ``Activated`` class
    (a convolution with a fused activation)."""

    def conv(ours: str, theirs: str, config: Callable[..., Config], build: Callable[[str], Build]) -> Row:
        return Row(ours, (theirs, f"Activated{theirs}"), partial(config, dims=d), build(theirs), _WEIGHT_BIAS)

    return (
        conv(f"Conv{d}D", f"Conv{d}d", conv_config, conv_build),
        conv(f"Conv{d}DTranspose", f"ConvTranspose{d}d", conv_transpose_config, conv_transpose_build),
        *(
            Row(f"{kind}Pool{d}D", (f"{kind}Pool{d}d",), partial(pool_config, dims=d, average=kind == "Avg"),
                pool_build(f"{kind}Pool{d}d"))
            for kind in ("Max", "Avg")
        ),
        *(
            Row(f"Global{kind}Pool{d}D", (f"Adaptive{kind}Pool{d}d",), global_config(d),
                partial(global_build, f"Adaptive{kind}Pool{d}d"))
            for kind in ("Avg", "Max")
        ),
    )


_ALL_ROWS = (
    Row("Sequential", ("Sequential",), lambda m: {}, lambda c: ("Sequential", {})),
    Row("Dense", ("Linear", "DenseLinear"), dense_config, dense_build, _WEIGHT_BIAS),
    *(row for d in (1, 2, 3) for row in _spatial_rows(d)),
    Row(
        "BatchNorm",
        ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "AnyRankBatchNorm"),
        batchnorm_config,
        batchnorm_build,
        _BATCHNORM,
        ignored=("num_batches_tracked",),
    ),
    Row("LayerNorm", ("LayerNorm",), layernorm_config, layernorm_build, _NORM),
    Row(
        "InstanceNorm",
        ("InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "AnyRankInstanceNorm"),
        instancenorm_config,
        instancenorm_build,
        # modelpack always applies gamma and beta: an affine-free torch module's are 1 and 0
        (Param("gamma", "weight", fill="ones"), Param("beta", "bias", fill="zeros")),
        ignored=("running_mean", "running_var", "num_batches_tracked"),
    ),
    Row(
        "GroupNorm",
        ("PerGroupNorm", "GroupNorm"),
        groupnorm_config,
        groupnorm_build,
        (Param("gamma", "weight"), Param("beta", "bias")),
    ),
    Row("ReflectionPad2D", ("ReflectionPad2d",), reflection_pad_config, reflection_pad_build),
    Row(
        "Embedding",
        ("Embedding",),
        embedding_config,
        lambda c: ("Embedding", {"num_embeddings": c["input_dim"], "embedding_dim": c["output_dim"]}),
        (Param("weight", "weight"),),
    ),
    Row(
        "Dropout",
        tuple(DROPOUT_AXES),
        lambda m: {"rate": float(m.p), "axes": DROPOUT_AXES[type(m).__name__]},
        dropout_build,
    ),
    Row("Flatten", ("Flatten",), flatten_config, lambda c: ("Flatten", {})),
    Row("Identity", ("Identity",), lambda m: {}, lambda c: ("Identity", {})),
    *(
        Row(mode, (mode,), recurrent_config(mode), recurrent_build(mode), recurrent_params)
        for mode in ("RNN", "LSTM", "GRU")
    ),
    Row(
        "Activation",
        tuple(ACTIVATION_CLASSES.values()),
        activation_config,
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
        lambda m: {"in_channels": m.num_parameters, "dtype": dtype_of(m.weight)},
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
    Row("Swish", (), lambda m: {}, swish_build),
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
        params = row.params_for(block.get_config())
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
