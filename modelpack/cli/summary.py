"""A manifest as people read it: a layer table with parameter counts and sizes, and totals.

``inspect`` on the command line prints this; ``--json`` prints the manifest itself. The table
is derived from the manifest alone (configs and the tensor index): no weight is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..format.schema import LayerNode, Manifest, TensorInfo

__all__ = ["LayerRow", "layer_rows", "render", "human_bytes"]

# Config keys worth a column: what defines a layer's size and behaviour at a glance.
_KEY_CONFIG = (
    "units", "channels", "kernel_size", "strides", "padding", "dilation", "groups", "pool_size",
    "ceil_mode", "activation", "use_bias", "flatten", "rate", "axis", "input_dim", "output_dim",
    "alpha", "source_class",
)


@dataclass(frozen=True)
class LayerRow:
    """One line of the layer table."""

    depth: int
    name: str
    type: str
    config: str
    output: str
    parameters: int
    bytes: int


def tensor_bytes(info: TensorInfo) -> int:
    return math.prod(info.shape) * np.dtype(info.dtype).itemsize


def human_bytes(count: float) -> str:
    """1536 → '1.5 KiB': binary units, as file managers and ``du -h`` show them."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    raise AssertionError("unreachable")


def layer_rows(manifest: Manifest) -> list[LayerRow]:
    """The architecture tree flattened in order, each layer with its own parameters' totals."""
    rows: list[LayerRow] = []
    if manifest.architecture is not None:
        _walk(manifest.architecture, "", 0, manifest.weights, rows)
    return rows


def _walk(
    node: LayerNode, path: str, depth: int, weights: dict[str, TensorInfo], rows: list[LayerRow]
) -> None:
    prefix = f"{path}." if path else ""
    nested = tuple(f"{prefix}{child}." for child in node.children)
    own = {
        name: info for name, info in weights.items()
        if name.startswith(prefix) and not name.startswith(nested)
    }
    rows.append(LayerRow(
        depth=depth,
        name=path or "(model)",
        type=node.type,
        config=_key_config(node),
        output=_output(node),
        parameters=sum(math.prod(info.shape) for info in own.values()),
        bytes=sum(tensor_bytes(info) for info in own.values()),
    ))
    for child_name, child in node.children.items():
        _walk(child, f"{prefix}{child_name}", depth + 1, weights, rows)


def _key_config(node: LayerNode) -> str:
    """The config entries that differ from the layer's defaults, key ones first."""
    from ..nn import registry  # the layer library: for a model's layers only

    defaults: dict[str, Any] = {}
    if node.type in registry.known_layers():
        fields = registry.layer_type(node.type).config.model_fields
        defaults = {name: f.default for name, f in fields.items() if not f.is_required()}
    shown = [k for k in _KEY_CONFIG if k in node.config and node.config[k] != defaults.get(k)]
    return ", ".join(f"{k}={_short(node.config[k])}" for k in shown)


def _short(value: Any) -> str:
    if isinstance(value, list):
        return "(" + ", ".join(str(v) for v in value) + ")"
    return str(value)


def _output(node: LayerNode) -> str:
    """The output shape where the config alone says it (``N`` is the batch, ``…`` unknown)."""
    if node.type == "Dense":
        flatten = node.config.get("flatten", True)
        return f"(N, {node.config['units']})" if flatten else f"(N, …, {node.config['units']})"
    if node.type.startswith("Conv") and node.type[4:6] in ("1D", "2D", "3D"):  # and transposes
        return f"(N, {node.config['channels']}, …)"
    if node.type == "Embedding":
        return f"(N, …, {node.config['output_dim']})"
    if node.type.startswith(("GlobalAvgPool", "GlobalMaxPool")):
        return "(N, C, " + ", ".join("1" * int(node.type[-2])) + ")"
    return ""


def render(manifest: Manifest, source: str, *, plain: bool) -> Any:
    """A rich renderable: header lines, then the layer (or tensor) table, then totals."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    total_params = sum(math.prod(info.shape) for info in manifest.weights.values())
    total_bytes = sum(tensor_bytes(info) for info in manifest.weights.values())
    header = [
        Text.assemble((source, "bold"), f"  {manifest.kind}, format {manifest.format_version}, "
                      f"written by {manifest.producer}"),
    ]
    header += [Text(f"  {key}: {value}") for key, value in manifest.metadata.items()]
    table = Table(box=box.SIMPLE if plain else box.ROUNDED, pad_edge=False, show_edge=not plain)
    if manifest.kind == "model" or (manifest.kind == "sharded" and manifest.architecture is not None):
        for column, justify in (("layer", "left"), ("type", "left"), ("config", "left"),
                                ("output", "left"), ("params", "right"), ("bytes", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for row in layer_rows(manifest):
            table.add_row(
                "  " * row.depth + row.name, row.type, row.config, row.output,
                f"{row.parameters:,}" if row.parameters else "", human_bytes(row.bytes) if row.bytes else "",
            )
        totals = Text(f"{total_params:,} parameters, {human_bytes(total_bytes)} of weights")
    else:
        for column, justify in (("tensor", "left"), ("dtype", "left"), ("shape", "left"), ("bytes", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for name, info in manifest.weights.items():
            table.add_row(name, info.dtype, str(tuple(info.shape)), human_bytes(tensor_bytes(info)))
        count = len(manifest.weights)
        totals = Text(f"{count} tensor{'s' if count != 1 else ''}, {total_params:,} elements, "
                      f"{human_bytes(total_bytes)}")
    return Group(*header, table, totals)
