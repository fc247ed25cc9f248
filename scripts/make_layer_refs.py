"""Write tests/data/layer_refs.npz + .json: torch's outputs for every layer type, so the layer
numerics stay checked on a machine without torch (``tests/nn/test_layers_reference.py``).

Run with the pinned torch installed (``pip install -e ".[torch]"``):
    python scripts/make_layer_refs.py
Each case names a registered layer type and config, a seeded input, the parameters, and the
output torch computes for them in float32. Rerun after adding a layer type or a case.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
ACT = {
    None: lambda x: x,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "softrelu": F.softplus,
    "softsign": F.softsign,
    "silu": F.silu,
    "gelu": lambda x: F.gelu(x.double()).float(),  # float32 erf kernels err by ~1e-6
}


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# Dot products of float32 accumulate rounding in proportion to sum |x||w| (the "spread"), and
# two implementations sum in different orders: 16 unit roundoffs of the largest spread, the
# same allowance the live torch tests give (measured differences stay under 6).
UNIT_ROUNDOFF = 2.0**-24


def _dot_atol(spread: torch.Tensor) -> float:
    return max(1e-6, 16 * UNIT_ROUNDOFF * float(spread.max()))


def cases() -> list[dict[str, Any]]:
    """Every case, deterministic: (type, config, input, params) plus torch's output."""
    rng = np.random.default_rng(20261130)
    normal = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    out: list[dict[str, Any]] = []

    def add(
        name: str,
        type_: str,
        config: dict,
        x: np.ndarray,
        params: dict,
        y: torch.Tensor,
        rtol: float = 1e-5,
        atol: float = 1e-6,
    ) -> None:
        out.append(
            {
                "name": name,
                "type": type_,
                "config": config,
                "input": x,
                "params": params,
                "output": y.detach().numpy(),
                "rtol": rtol,
                "atol": atol,
            }
        )

    for act in ACT:
        x, w, b = normal(5, 7), normal(4, 7), normal(4)
        add(
            f"dense_{act}",
            "Dense",
            {"units": 4, "in_units": 7, "activation": act},
            x,
            {"weight": w, "bias": b},
            ACT[act](F.linear(_t(x), _t(w), _t(b))),
            atol=_dot_atol(F.linear(_t(abs(x)), _t(abs(w)), _t(abs(b)))),
        )
        if act is not None:
            x = normal(3, 5) * 4
            add(f"activation_{act}", "Activation", {"activation": act}, x, {}, ACT[act](_t(x)))
    x, w = normal(2, 3, 5), normal(6, 5)
    add(
        "dense_no_flatten_no_bias",
        "Dense",
        {"units": 6, "in_units": 5, "flatten": False, "use_bias": False},
        x,
        {"weight": w},
        F.linear(_t(x), _t(w)),
        atol=_dot_atol(F.linear(_t(abs(x)), _t(abs(w)))),
    )
    x = normal(4, 6) * 3
    add("leaky_relu", "LeakyReLU", {"alpha": 0.15}, x, {}, F.leaky_relu(_t(x), 0.15))
    add("elu", "ELU", {"alpha": 0.7}, x, {}, F.elu(_t(x), 0.7))
    for stride, pad, dil, groups, act in [
        (1, 0, 1, 1, None),
        (2, 1, 1, 1, "relu"),
        (1, 2, 2, 1, "tanh"),
        ((2, 1), (1, 0), (1, 2), 2, None),
        (1, 1, 1, 4, "sigmoid"),
    ]:
        x, w, b = normal(2, 4, 9, 8), normal(8, 4 // groups, 3, 3), normal(8)
        pair = lambda v: list(v) if isinstance(v, tuple) else [v, v]  # noqa: E731
        y = ACT[act](F.conv2d(_t(x), _t(w), _t(b), stride=stride, padding=pad, dilation=dil, groups=groups))
        spread = F.conv2d(
            _t(abs(x)), _t(abs(w)), _t(abs(b)), stride=stride, padding=pad, dilation=dil, groups=groups
        )
        add(
            f"conv2d_s{stride}_p{pad}_d{dil}_g{groups}_{act}".replace(" ", ""),
            "Conv2D",
            {
                "channels": 8,
                "kernel_size": [3, 3],
                "strides": pair(stride),
                "padding": pair(pad),
                "dilation": pair(dil),
                "groups": groups,
                "in_channels": 4,
                "activation": act,
            },
            x,
            {"weight": w, "bias": b},
            y,
            atol=_dot_atol(spread),
        )
    for size, stride, pad, ceil in [(2, 2, 0, False), (3, 2, 1, False), (3, 2, 1, True), (2, 1, 0, True)]:
        x = normal(2, 3, 7, 9)
        cfg = {
            "pool_size": [size, size],
            "strides": [stride, stride],
            "padding": [pad, pad],
            "ceil_mode": ceil,
        }
        add(
            f"maxpool_{size}_{stride}_{pad}_{ceil}",
            "MaxPool2D",
            cfg,
            x,
            {},
            F.max_pool2d(_t(x), size, stride, pad, ceil_mode=ceil),
        )
        for include in (True, False):
            add(
                f"avgpool_{size}_{stride}_{pad}_{ceil}_{include}",
                "AvgPool2D",
                {**cfg, "count_include_pad": include},
                x,
                {},
                F.avg_pool2d(_t(x), size, stride, pad, ceil_mode=ceil, count_include_pad=include),
            )
    x = normal(3, 4, 5, 6)
    add("global_avg", "GlobalAvgPool2D", {}, x, {}, F.adaptive_avg_pool2d(_t(x), 1))
    add("global_max", "GlobalMaxPool2D", {}, x, {}, F.adaptive_max_pool2d(_t(x), 1))
    x = normal(4, 3, 5, 2)
    gamma, beta, mean, var = normal(3), normal(3), normal(3), rng.uniform(0.5, 2, 3).astype(np.float32)
    add(
        "batchnorm_inference",
        "BatchNorm",
        {"in_channels": 3, "epsilon": 1e-3},
        x,
        {"gamma": gamma, "beta": beta, "running_mean": mean, "running_var": var},
        F.batch_norm(_t(x), _t(mean), _t(var), _t(gamma), _t(beta), training=False, eps=1e-3),
        atol=1e-5,
    )
    x, gamma, beta = normal(4, 6) * 5 + 2, normal(6), normal(6)
    add(
        "layernorm",
        "LayerNorm",
        {"in_channels": 6},
        x,
        {"gamma": gamma, "beta": beta},
        F.layer_norm(_t(x), (6,), _t(gamma), _t(beta), eps=1e-5),
        atol=1e-5,
    )
    idx, w = rng.integers(0, 10, (3, 4)), normal(10, 5)
    add(
        "embedding",
        "Embedding",
        {"input_dim": 10, "output_dim": 5},
        idx,
        {"weight": w},
        F.embedding(_t(idx), _t(w)),
    )
    x = normal(2, 3, 4, 5)
    add("flatten", "Flatten", {}, x, {}, torch.flatten(_t(x), 1))
    add("identity", "Identity", {}, x, {}, _t(x))
    add("lambda_tanh", "Lambda", {"function": "tanh"}, x, {}, torch.tanh(_t(x)))
    add("lambda_softmax", "Lambda", {"function": "softmax"}, x, {}, torch.softmax(_t(x), -1))
    add("hybrid_lambda_exp", "HybridLambda", {"function": "exp"}, x, {}, torch.exp(_t(x)))
    _add_gluon_cases(add, normal, rng)
    return out


def _add_gluon_cases(add: Any, normal: Any, rng: np.random.Generator) -> None:
    """The layers of Gluon 1.9's catalogue beyond the seed chapters' (issue 14)."""
    conv = {1: F.conv1d, 3: F.conv3d}
    for dims, size in ((1, (11,)), (3, (5, 6, 4))):
        for stride, pad, dil, groups in [(1, 0, 1, 1), (2, 1, 1, 2), (1, 2, 2, 1)]:
            kernel = (3,) * dims
            x, w, b = normal(2, 4, *size), normal(6, 4 // groups, *kernel) / 3, normal(6)
            options = {"stride": stride, "padding": pad, "dilation": dil, "groups": groups}
            add(
                f"conv{dims}d_s{stride}_p{pad}_d{dil}_g{groups}",
                f"Conv{dims}D",
                {"channels": 6, "kernel_size": list(kernel), "strides": [stride] * dims,
                 "padding": [pad] * dims, "dilation": [dil] * dims, "groups": groups, "in_channels": 4},
                x,
                {"weight": w, "bias": b},
                conv[dims](_t(x), _t(w), _t(b), **options),
                atol=_dot_atol(conv[dims](_t(abs(x)), _t(abs(w)), _t(abs(b)), **options)),
            )
    transpose = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    for dims, size in ((1, (7,)), (2, (5, 4)), (3, (3, 4, 3))):
        for stride, pad, out_pad, dil, groups, act in [
            (1, 0, 0, 1, 1, None), (2, 1, 1, 1, 2, "relu"), (3, 1, 2, 2, 1, "tanh"),
        ]:
            kernel = (3,) * dims
            x, w, b = normal(2, 4, *size), normal(4, 6 // groups, *kernel) / 3, normal(6)
            options = {"stride": stride, "padding": pad, "output_padding": out_pad, "groups": groups,
                       "dilation": dil}
            add(
                f"conv{dims}d_transpose_s{stride}_p{pad}_o{out_pad}_d{dil}_g{groups}_{act}",
                f"Conv{dims}DTranspose",
                {"channels": 6, "kernel_size": list(kernel), "strides": [stride] * dims,
                 "padding": [pad] * dims, "output_padding": [out_pad] * dims, "dilation": [dil] * dims,
                 "groups": groups, "in_channels": 4, "activation": act},
                x,
                {"weight": w, "bias": b},
                ACT[act](transpose[dims](_t(x), _t(w), _t(b), **options)),
                atol=_dot_atol(transpose[dims](_t(abs(x)), _t(abs(w)), _t(abs(b)), **options)),
            )
    for dims, size in ((1, (9,)), (3, (5, 6, 7))):
        for pool, stride, pad, ceil in [(2, 2, 0, False), (3, 2, 1, True)]:
            x = normal(2, 3, *size)
            cfg = {"pool_size": [pool] * dims, "strides": [stride] * dims, "padding": [pad] * dims,
                   "ceil_mode": ceil}
            top = getattr(F, f"max_pool{dims}d")(_t(x), pool, stride, pad, ceil_mode=ceil)
            add(f"maxpool{dims}d_{pool}_{stride}_{pad}_{ceil}", f"MaxPool{dims}D", cfg, x, {}, top)
            for include in (True, False):
                mean = getattr(F, f"avg_pool{dims}d")(_t(x), pool, stride, pad, ceil_mode=ceil,
                                                      count_include_pad=include)
                add(f"avgpool{dims}d_{pool}_{stride}_{pad}_{ceil}_{include}", f"AvgPool{dims}D",
                    {**cfg, "count_include_pad": include}, x, {}, mean)
        x = normal(2, 3, *size)
        add(f"global_avg{dims}d", f"GlobalAvgPool{dims}D", {}, x, {},
            getattr(F, f"adaptive_avg_pool{dims}d")(_t(x), 1))
        add(f"global_max{dims}d", f"GlobalMaxPool{dims}D", {}, x, {},
            getattr(F, f"adaptive_max_pool{dims}d")(_t(x), 1))
    x = normal(2, 3, 5, 6)
    add("reflection_pad", "ReflectionPad2D", {"padding": [0, 0, 0, 0, 1, 4, 2, 3]}, x, {},
        F.pad(_t(x), (2, 3, 1, 4), mode="reflect"))
    x, gamma, beta = normal(3, 4, 5, 6) * 2 + 1, rng.uniform(0.5, 2, 4).astype(np.float32), normal(4)
    add("instancenorm", "InstanceNorm", {"in_channels": 4, "epsilon": 1e-3}, x,
        {"gamma": gamma, "beta": beta},
        F.instance_norm(_t(x), weight=_t(gamma), bias=_t(beta), eps=1e-3), atol=1e-5)
    x, gamma, beta = normal(3, 6, 5) * 2 - 1, rng.uniform(0.5, 2, 3).astype(np.float32), normal(3)
    add("groupnorm", "GroupNorm", {"num_groups": 3}, x, {"gamma": gamma, "beta": beta},
        F.group_norm(_t(x), 3, _t(np.repeat(gamma, 2)), _t(np.repeat(beta, 2)), eps=1e-5), atol=1e-5)
    x = normal(3, 4, 5) * 3
    for channels in (1, 4):
        alpha = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
        add(f"prelu_{channels}", "PReLU", {"in_channels": channels}, x, {"alpha": alpha},
            F.prelu(_t(x), _t(alpha)))
    add("selu", "SELU", {}, x, {}, F.selu(_t(x)))
    add("swish", "Swish", {"beta": 1.5}, x, {}, _t(x) * torch.sigmoid(1.5 * _t(x)))
    add("gelu_erf", "GELU", {}, x, {}, F.gelu(_t(x).double()).float())
    add("gelu_tanh", "GELU", {"approximation": "tanh"}, x, {},
        F.gelu(_t(x).double(), approximate="tanh").float())


def main() -> None:
    DATA.mkdir(exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    index = []
    for case in cases():
        name = case["name"]
        arrays[f"{name}/input"] = case["input"]
        arrays[f"{name}/output"] = case["output"]
        for key, value in case["params"].items():
            arrays[f"{name}/param/{key}"] = value
        index.append(
            {k: case[k] for k in ("name", "type", "config", "rtol", "atol")}
            | {"params": list(case["params"])}
        )
    np.savez(DATA / "layer_refs.npz", **arrays)
    document = {"torch": torch.__version__, "cases": index}
    (DATA / "layer_refs.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {len(index)} cases to {DATA}")


if __name__ == "__main__":
    main()
