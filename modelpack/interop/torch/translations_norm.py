"""How torch's normalisation layers translate to modelpack's and back (``BatchNorm``,
``LayerNorm``, ``InstanceNorm``, ``GroupNorm``), for the table in ``layers``; the shared
pieces and the other families are in ``translations``.
"""

from __future__ import annotations

from typing import Any

from .translations import Config, dtype_of, refuse

__all__ = [
    "batchnorm_config", "batchnorm_build", "layernorm_config", "layernorm_build",
    "instancenorm_config", "instancenorm_build", "groupnorm_config", "groupnorm_build",
]


def batchnorm_config(m: Any) -> Config:
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
        "dtype": dtype_of(m.running_mean),
    }


def batchnorm_build(c: Config) -> tuple[str, Config]:
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


def layernorm_config(m: Any) -> Config:
    if len(m.normalized_shape) != 1:
        raise refuse(f"normalized_shape={tuple(m.normalized_shape)} (modelpack normalises one axis)")
    affine = bool(m.elementwise_affine)
    return {
        "axis": -1,
        "epsilon": float(m.eps),
        "center": affine and m.bias is not None,
        "scale": affine,
        "in_channels": m.normalized_shape[0],
        "dtype": dtype_of(m.weight) if affine else "float32",
    }


def layernorm_build(c: Config) -> tuple[str, Config]:
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


def instancenorm_config(m: Any) -> Config:
    if m.track_running_stats:
        raise refuse("track_running_stats=True (normalises with running statistics at inference)")
    affine = bool(m.affine)
    return {
        "axis": 1,
        "epsilon": float(m.eps),
        "center": affine,
        "scale": affine,
        "in_channels": m.num_features,
        "dtype": dtype_of(m.weight) if affine else "float32",
    }


def instancenorm_build(c: Config) -> tuple[str, Config]:
    if c["axis"] != 1 or not c["in_channels"]:
        raise refuse(
            f"axis={c['axis']}, in_channels={c['in_channels']} (torch normalises over axis 1, of a "
            "known size)"
        )
    # modelpack always applies gamma and beta: torch's affine holds them
    return "AnyRankInstanceNorm", {"num_features": c["in_channels"], "eps": c["epsilon"], "affine": True}


def groupnorm_config(m: Any) -> Config:
    """torch's nn.GroupNorm (one weight per channel) or the bridge's PerGroupNorm (one per group)."""
    return {
        "num_groups": int(m.num_groups),
        "epsilon": float(m.eps),
        "center": True,
        "scale": True,
        "dtype": dtype_of(m.weight) if m.weight is not None else "float32",
    }


def groupnorm_build(c: Config) -> tuple[str, Config]:
    # modelpack's (MXNet's) gamma and beta are per group and it does not know the channel
    # count: the bridge's own module has exactly that
    return "PerGroupNorm", {"num_groups": c["num_groups"], "eps": c["epsilon"]}
