"""``modelpack diff A B``: how two model files differ, in architecture and per tensor.

Each side is a modelpack archive, an ``.npz`` parameter file or an MXNet NDArray file.
Architectures are compared when both sides have one; tensors by name (an MXNet side's
``arg:``/``aux:`` prefixes dropped, ``dense0_weight`` meeting ``dense0.weight``): only in A or
B, shape or dtype changed, or the largest absolute difference. Exit 1 when anything differs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError
from .progress import progress

if TYPE_CHECKING:  # (numpy is imported when a diff runs: the CLI's parser is built without it)
    import numpy as np

__all__ = ["add_parser", "Side", "compare", "architecture_changes", "max_abs_difference"]


def add_parser(commands: Any) -> None:
    """Register the subcommand on the CLI's subparsers."""
    diff = commands.add_parser(
        "diff", help="compare two model files: architecture and tensors; exit 1 if they differ"
    )
    diff.add_argument("a", metavar="A")
    diff.add_argument("b", metavar="B")
    diff.add_argument("--atol", type=float, default=0.0,
                      help="tensors whose values differ by at most this much count as equal (default 0)")
    diff.add_argument("--json", action="store_true", help="print the differences as JSON")
    diff.set_defaults(run=run)


@dataclass
class Side:
    """One file: what it is, its architecture (if any), its tensors' dtypes/shapes, a reader."""

    path: str
    kind: str
    architecture: Any  # a LayerNode, or None
    tensors: dict[str, tuple[str, tuple[int, ...]]]
    read: Callable[[str], np.ndarray] = field(repr=False)


@contextlib.contextmanager
def open_side(path: str) -> Iterator[Side]:
    """A side of the comparison; tensors are read one at a time, when compared."""
    from ..format.archive import Archive
    from ..io import npz
    from ..io.paths import open_for_reading
    from ..io.sniff import is_mxnet, sniff

    with open_for_reading(path) as handle:
        kind = "mxnet" if is_mxnet(handle) else sniff(handle).name
        if kind == "npz":
            arrays = npz.read_npz(handle, source=path)
    if kind == "mxnet":
        from ..interop.mxnet import ndarray
        from ..interop.mxnet.conversion import drop_prefixes

        loaded = ndarray.load(path)
        arrays = drop_prefixes(loaded, path) if isinstance(loaded, dict) else dict(enumerate_names(loaded))
    if kind in ("mxnet", "npz"):
        described = "an MXNet NDArray file" if kind == "mxnet" else "an .npz parameter file"
        yield Side(path, described, None, {n: (a.dtype.name, a.shape) for n, a in arrays.items()},
                   arrays.__getitem__)
        return
    if kind == "unknown" and path.endswith(".json"):
        raise UsageError(f"{path}: diff compares weight files and archives; give the symbol's "
                         "-0000.params file, or convert the export first")
    with Archive(path) as archive:  # any other kind is refused here, naming what it is
        shapes = {n: (info.dtype, tuple(info.shape)) for n, info in archive.tensors.items()}
        yield Side(path, f"a modelpack {archive.kind} archive", archive.architecture, shapes,
                   archive.get_tensor)


def enumerate_names(arrays: list[np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
    """A list's arrays named by position, as a tensor archive names them (``0``, ``1``, ...)."""
    return ((str(i), array) for i, array in enumerate(arrays))


def architecture_changes(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """Where two architecture trees differ: type, config entries, children only in one."""
    where = path or "(model)"
    if a.type != b.type:
        return [{"path": where, "change": "type", "a": a.type, "b": b.type}]
    changes = [
        {"path": where, "change": "config", "key": key, "a": a.config.get(key), "b": b.config.get(key)}
        for key in sorted(set(a.config) | set(b.config)) if a.config.get(key) != b.config.get(key)
    ]
    prefix = f"{path}." if path else ""
    for name in a.children:
        if name not in b.children:
            changes.append({"path": prefix + name, "change": "only in A", "a": a.children[name].type})
        else:
            changes.extend(architecture_changes(a.children[name], b.children[name], prefix + name))
    changes += [{"path": prefix + name, "change": "only in B", "b": b.children[name].type}
                for name in b.children if name not in a.children]
    return changes


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest |a - b| (NaN against NaN counts as equal; NaN against a number as inf)."""
    import numpy as np

    if a.size == 0:
        return 0.0
    if a.dtype == np.bool_ or b.dtype == np.bool_:
        return float(np.any(a != b))
    wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        gaps = np.abs(wide_a - wide_b)
    nan_a, nan_b = np.isnan(wide_a), np.isnan(wide_b)
    gaps[nan_a & nan_b] = 0.0
    gaps[nan_a ^ nan_b] = np.inf
    gaps[np.isnan(gaps)] = 0.0  # inf - inf of the same sign: equal values
    return float(gaps.max())


def compare(a: Side, b: Side, *, atol: float = 0.0) -> dict[str, Any]:
    """The whole comparison as a JSON-able document; ``identical`` says whether to exit 0."""
    from ..interop.mxnet import match_names

    renamed = match_names(b.tensors, a.tensors)  # B's names as A spells them, where they map
    b_names = {renamed[name]: name for name in b.tensors}
    report: dict[str, Any] = {
        "a": {"path": a.path, "kind": a.kind}, "b": {"path": b.path, "kind": b.kind},
        "architecture": None, "tensors": {"identical": 0, "different": [], "changed": [],
                                          "only_in_a": [], "only_in_b": []},
    }
    if a.architecture is not None and b.architecture is not None:
        report["architecture"] = architecture_changes(a.architecture, b.architecture)
    tensors = report["tensors"]
    for name, (dtype, shape) in a.tensors.items():
        if name not in b_names:
            tensors["only_in_a"].append(name)
            continue
        other = b.tensors[b_names[name]]
        if (dtype, tuple(shape)) != (other[0], tuple(other[1])):
            tensors["changed"].append({"name": name, "a": {"dtype": dtype, "shape": list(shape)},
                                       "b": {"dtype": other[0], "shape": list(other[1])}})
            continue
        gap = max_abs_difference(a.read(name), b.read(b_names[name]))
        if gap > atol:
            tensors["different"].append({"name": name, "max_abs_difference": gap})
        else:
            tensors["identical"] += 1
    tensors["only_in_b"] = [name for name in b.tensors if renamed[name] not in a.tensors]
    report["identical"] = not (report["architecture"] or any(tensors[k] for k in tensors if k != "identical"))
    return report


def run(args: argparse.Namespace) -> int:
    if args.atol < 0:
        raise UsageError(f"--atol must be at least 0, found {args.atol}")
    with progress(f"comparing {args.a} and {args.b}"), open_side(args.a) as a, open_side(args.b) as b:
        report = compare(a, b, atol=args.atol)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(_lines(report)))
    return 0 if report["identical"] else 1


def _lines(report: dict[str, Any]) -> list[str]:
    lines = [f"{side.upper()}: {report[side]['path']} ({report[side]['kind']})" for side in ("a", "b")]
    changes = report["architecture"]
    if changes is None:
        lines.append("architecture: not compared (one side has none)")
    elif not changes:
        lines.append("architecture: identical")
    else:
        lines.append(f"architecture: {len(changes)} difference{'s' if len(changes) != 1 else ''}")
        for change in changes:
            if change["change"] == "config":
                before, after = _short(change["a"]), _short(change["b"])
                lines.append(f"  {change['path']}: {change['key']}: {before} -> {after}")
            elif change["change"] == "type":
                lines.append(f"  {change['path']}: type {change['a']} -> {change['b']}")
            else:
                lines.append(f"  {change['path']}: {change['change']} ({change.get('a') or change.get('b')})")
    t = report["tensors"]
    lines.append(f"tensors: {t['identical']} identical, {len(t['different'])} differ, "
                 f"{len(t['changed'])} changed shape or dtype, {len(t['only_in_a'])} only in A, "
                 f"{len(t['only_in_b'])} only in B")
    lines += [f"  {d['name']}: max |A - B| = {d['max_abs_difference']:.6g}" for d in t["different"]]
    lines += [f"  {c['name']}: {c['a']['dtype']} {tuple(c['a']['shape'])} -> {c['b']['dtype']} "
              f"{tuple(c['b']['shape'])}" for c in t["changed"]]
    lines += [f"  only in A: {name}" for name in t["only_in_a"]]
    lines += [f"  only in B: {name}" for name in t["only_in_b"]]
    lines.append("identical" if report["identical"] else "different")
    return lines


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
