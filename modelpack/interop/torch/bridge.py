"""``from_torch`` and ``to_torch``: modules translated layer by layer with the table in ``layers``.

Containers (``nn.Sequential`` ↔ ``Sequential``) keep their children's names, so a torch
``state_dict`` and the modelpack model's parameters share names up to each row's renames
(BatchNorm's ``weight`` is modelpack's ``gamma``). A module no row knows — including a
subclass of a known one, whose ``forward`` may differ — is refused, naming its path and class.

A few small torch classes stand for modelpack layers that torch spells otherwise:
``DenseLinear`` (a Linear that flattens its input and applies an activation),
``ActivatedConv1d``/``2d``/``3d`` and ``ActivatedConvTranspose1d``/``2d``/``3d``,
``AnyRankBatchNorm`` and ``AnyRankInstanceNorm`` (modelpack's norms take any rank), and
``PerGroupNorm`` (MXNet's GroupNorm: one scale and shift per group, not per channel). Their
parameters are named as torch's own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import UnsupportedBlockError
from ...nn import registry
from ...nn.block import Block
from ...nn.compose import Sequential
from .layers import ACTIVATION_CLASSES, ROWS, ROWS_BY_TYPE, Row

__all__ = [
    "from_torch",
    "to_torch",
    "DenseLinear",
    "ActivatedConv1d",
    "ActivatedConv2d",
    "ActivatedConv3d",
    "AnyRankBatchNorm",
    "AnyRankInstanceNorm",
    "PerGroupNorm",
]

RTOL, ATOL = 1e-4, 1e-5  # float32, for the optional check on ``example``


def _activation(name: str | None) -> nn.Module | None:
    return getattr(nn, ACTIVATION_CLASSES[name])() if name else None


class DenseLinear(nn.Linear):
    """modelpack's Dense: flattens all axes but the first (``flatten``), then an activation."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        flatten: bool = True,
        activation: str | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.flatten, self.activation_name = flatten, activation
        self.act = _activation(activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x.flatten(1) if self.flatten and x.dim() > 2 else x)
        return self.act(out) if self.act is not None else out


def _activated(base: type[nn.Module]) -> type[nn.Module]:
    """``base`` (a convolution) followed by modelpack's named activation."""

    class Activated(base):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, activation: str, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.activation_name, self.act = activation, getattr(nn, ACTIVATION_CLASSES[activation])()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(super().forward(x))

    Activated.__name__ = Activated.__qualname__ = f"Activated{base.__name__}"
    return Activated


ActivatedConv1d = _activated(nn.Conv1d)
ActivatedConv2d = _activated(nn.Conv2d)
ActivatedConv3d = _activated(nn.Conv3d)
ActivatedConvTranspose1d = _activated(nn.ConvTranspose1d)
ActivatedConvTranspose2d = _activated(nn.ConvTranspose2d)
ActivatedConvTranspose3d = _activated(nn.ConvTranspose3d)


class AnyRankBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over axis 1 of any input of rank 2 or more, as modelpack's BatchNorm."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected an input of rank 2 or more, got {input.dim()}")


class AnyRankInstanceNorm(nn.modules.instancenorm._InstanceNorm):
    """InstanceNorm over the axes after 1 of any batched input of rank 3 or more."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 3:
            raise ValueError(f"expected an input of rank 3 or more, got {input.dim()}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(input)  # always batched: no rank-dependent unbatched case
        return self._apply_instance_norm(input)


class PerGroupNorm(nn.Module):
    """MXNet's (modelpack's) GroupNorm: channels in ``num_groups`` groups, each example's group
    normalised, then one scale (``weight``) and shift (``bias``) per group."""

    def __init__(self, num_groups: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.num_groups, self.eps = num_groups, eps
        self.weight = nn.Parameter(torch.ones(num_groups))
        self.bias = nn.Parameter(torch.zeros(num_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = nn.functional.group_norm(x, self.num_groups, None, None, self.eps)
        grouped = normed.reshape(x.shape[0], self.num_groups, -1)
        return (grouped * self.weight[:, None] + self.bias[:, None]).reshape(x.shape)


_OWN_CLASSES: dict[str, type[nn.Module]] = {
    cls.__name__: cls
    for cls in (
        DenseLinear, ActivatedConv1d, ActivatedConv2d, ActivatedConv3d, ActivatedConvTranspose1d,
        ActivatedConvTranspose2d, ActivatedConvTranspose3d, AnyRankBatchNorm, AnyRankInstanceNorm,
        PerGroupNorm,
    )
}


def _torch_class(name: str) -> type[nn.Module]:
    return _OWN_CLASSES.get(name) or getattr(nn, name)


# Exact classes only: a subclass of nn.Linear may compute anything in its forward.
_ROW_OF_CLASS: dict[type, Row] = {
    _torch_class(name): row for row in ROWS for name in row.torch if name in _OWN_CLASSES or hasattr(nn, name)
}


def from_torch(module: nn.Module, example: Any = None) -> Block:
    """A modelpack model computing what ``module`` computes (at inference), with its weights.

    ``example`` (an input tensor or array) checks the translation: both models run on it and
    their outputs must agree within float32 tolerance, else ``UnsupportedBlockError``.

    >>> net = from_torch(torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU()))  # doctest: +SKIP
    """
    net = _from_module(module, "")
    if example is not None:
        _check_same_outputs(module, net, example)
    return net


def _from_module(module: nn.Module, path: str) -> Block:
    row = _ROW_OF_CLASS.get(type(module))
    where = f"torch module {path or '(top level)'!r} ({type(module).__name__})"
    if row is None:
        known = sorted({name for row in ROWS for name in row.torch if name not in _OWN_CLASSES})
        raise UnsupportedBlockError(f"{where} has no modelpack equivalent; supported: {', '.join(known)}")
    if row.modelpack == "Sequential":
        net = Sequential()
        for name, child in module.named_children():
            net.register_child(_from_module(child, f"{path}.{name}" if path else name), name)
        return net
    if any(True for _ in module.children()) and type(module).__name__ not in _OWN_CLASSES:
        raise UnsupportedBlockError(f"{where} has child modules")  # its activation, for our own classes
    if any(nn.parameter.is_lazy(p) for p in module.parameters()):
        raise UnsupportedBlockError(f"{where} has parameters not initialized yet (call it on an input first)")
    try:
        config = row.config(module)
    except UnsupportedBlockError as exc:
        raise UnsupportedBlockError(f"{where}: {exc}") from None
    if type(module) is nn.GroupNorm:
        return _from_group_norm(module, config, where)
    block = registry.layer_type(row.modelpack).build(config)
    state = {name: tensor.detach().cpu().numpy().copy() for name, tensor in module.state_dict().items()}
    arrays = {}
    for param in row.params_for(config):
        if param.modelpack not in block.params:
            continue
        if param.torch in state:
            arrays[param.modelpack] = state[param.torch]
        else:  # an affine-free norm: the identity scale and shift
            shape = block.params[param.modelpack].shape
            arrays[param.modelpack] = (np.ones if param.fill == "ones" else np.zeros)(shape, config["dtype"])
    block.set_parameters(arrays, source=where)
    return block


def _from_group_norm(module: nn.GroupNorm, config: dict[str, Any], where: str) -> Block:
    """torch's GroupNorm scales per channel, modelpack's per group. A scale and shift constant
    within each group are per-group values; others stay exact as a GroupNorm without affine
    followed by a BatchNorm that only scales and shifts (mean 0, variance 1, epsilon 0)."""
    groups, channels = module.num_groups, module.num_channels
    norm = registry.layer_type("GroupNorm").build(config)
    ones, zeros = np.ones(groups, config["dtype"]), np.zeros(groups, config["dtype"])
    if not module.affine:
        norm.set_parameters({"gamma": ones, "beta": zeros}, source=where)
        return norm
    weight = module.weight.detach().cpu().numpy().reshape(groups, channels // groups)
    bias = module.bias.detach().cpu().numpy().reshape(groups, channels // groups)
    if (weight == weight[:, :1]).all() and (bias == bias[:, :1]).all():
        norm.set_parameters({"gamma": weight[:, 0].copy(), "beta": bias[:, 0].copy()}, source=where)
        return norm
    norm.set_parameters({"gamma": ones, "beta": zeros}, source=where)
    affine = registry.layer_type("BatchNorm").build(
        {"epsilon": 0.0, "in_channels": channels, "dtype": config["dtype"]}
    )
    affine.set_parameters(
        {
            "gamma": weight.reshape(-1).copy(),
            "beta": bias.reshape(-1).copy(),
            "running_mean": np.zeros(channels, config["dtype"]),
            "running_var": np.ones(channels, config["dtype"]),
        },
        source=where,
    )
    both = Sequential()
    both.register_child(norm, "norm")
    both.register_child(affine, "affine")
    return both


def to_torch(net: Block) -> nn.Module:
    """A torch module computing what ``net`` computes, with its weights (in eval mode).

    >>> module = to_torch(modelpack.load("mlp.mpk"))  # doctest: +SKIP
    """
    module = _to_module(net, "")
    return module.eval()


def _to_module(block: Block, path: str) -> nn.Module:
    type_name = registry.type_name_of(block)
    row = ROWS_BY_TYPE.get(type_name or "")
    where = f"block {path or '(top level)'!r} ({type_name or type(block).__name__})"
    if row is None:
        raise UnsupportedBlockError(
            f"{where} has no torch equivalent here; supported: {', '.join(sorted(ROWS_BY_TYPE))}"
        )
    if row.modelpack == "Sequential":
        sequential = nn.Sequential()
        for name, child in block.children.items():
            sequential.add_module(name, _to_module(child, f"{path}.{name}" if path else name))
        return sequential
    config = block.get_config()
    try:
        class_name, kwargs = row.build(config)
    except UnsupportedBlockError as exc:
        raise UnsupportedBlockError(f"{where}: {exc}") from None
    module = _torch_class(class_name)(**kwargs)
    dtype = getattr(torch, config.get("dtype", "float32"))
    module = module.to(dtype)
    state = module.state_dict()
    for param in row.params_for(config):
        if param.torch not in state:
            continue
        if param.when is not None and not config[param.when]:
            value = (np.ones if param.fill == "ones" else np.zeros)(tuple(state[param.torch].shape))
        else:
            value = block.params[param.modelpack].array()
        state[param.torch] = torch.from_numpy(np.array(value, dtype=config["dtype"]))
    module.load_state_dict(state)
    return module


def _check_same_outputs(module: nn.Module, net: Block, example: Any) -> None:
    """Run both on ``example`` (torch in eval mode, restored afterwards); outputs must agree."""
    modes = {m: m.training for m in module.modules()}
    array = example.detach().cpu().numpy() if isinstance(example, torch.Tensor) else np.asarray(example)
    try:
        module.eval()
        with torch.no_grad():
            output = module(torch.from_numpy(array.copy()))
        # a recurrent layer returns (output, states); modelpack's, called without states, the output
        expected = (output[0] if isinstance(output, tuple) else output).detach().cpu().numpy()
    finally:
        for m, training in modes.items():
            m.train(training)
    found = np.asarray(net(array))
    if found.shape != expected.shape or not np.allclose(found, expected, rtol=RTOL, atol=ATOL):
        worst = float(np.max(np.abs(found - expected))) if found.shape == expected.shape else float("nan")
        raise UnsupportedBlockError(
            f"the translated model's output differs from the torch module's on the example: shape "
            f"{found.shape} vs {expected.shape}, largest difference {worst:.3g}"
        )
