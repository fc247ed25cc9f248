"""``inspect`` and ``verify`` for MXNet's files: NDArray files (``npx.save``, Gluon ``.params``)
and symbol JSON (``-symbol.json``), read with ``modelpack.interop.mxnet`` (never MXNet).

An NDArray file has no checksums: ``verify`` reads every header and every array, which is
what can be checked. A symbol is checked for structure and for operators modelpack converts.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

from ..errors import ModelpackError, PathError
from ..io.paths import PathOrFile, describe, open_for_reading
from ..io.sniff import is_mxnet, is_symbol_file
from .summary import human_bytes

if TYPE_CHECKING:
    from ..format.verify import VerifyReport

__all__ = ["MXNetKind", "mxnet_kind", "inspect_document", "render", "verify_report"]

MXNetKind = Literal["ndarray", "symbol"]


def mxnet_kind(path: PathOrFile) -> MXNetKind | None:
    """``ndarray`` or ``symbol`` for MXNet's files (from their first bytes), else None."""
    with open_for_reading(path) as handle:  # (opened once for both sniffs)
        if is_mxnet(handle):
            return "ndarray"
        return "symbol" if is_symbol_file(handle) else None


def inspect_document(path: PathOrFile, kind: MXNetKind) -> dict[str, Any]:
    """What ``inspect --json`` prints: the file's headers (NDArray) or graph summary (symbol)."""
    from ..interop.mxnet import ndarray
    from ..interop.mxnet.lowering import LOWERINGS
    from ..interop.mxnet.symbol import read_symbol

    if kind == "ndarray":
        index = ndarray.scan(path)
        return {
            "path": describe(path), "kind": "mxnet-ndarray", "named": index.named,
            "arrays": [{"name": e.name, "dtype": e.dtype, "shape": list(e.shape), "bytes": e.nbytes,
                        "layout": e.layout} for e in index.entries],
            "total_bytes": index.total_bytes,
        }
    symbol = read_symbol(path)
    operators = Counter(node.op for node in symbol.nodes if node.op != "null")
    return {
        "path": describe(path), "kind": "mxnet-symbol", "nodes": len(symbol.nodes),
        "variables": [node.name for node in symbol.nodes if node.op == "null"],
        "outputs": len(symbol.heads), "operators": dict(sorted(operators.items())),
        "unsupported": sorted(op for op in operators if op not in LOWERINGS),
    }


def render(document: dict[str, Any], *, plain: bool) -> Any:
    """The human form of ``inspect_document``: a header line and a table."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE if plain else box.ROUNDED, pad_edge=False, show_edge=not plain)
    if document["kind"] == "mxnet-ndarray":
        count = len(document["arrays"])
        layouts = ", ".join(sorted({a["layout"] for a in document["arrays"]})) or "none"
        header = Text.assemble((document["path"], "bold"), f"  MXNet NDArray file, {count} "
                               f"{'named ' if document['named'] else ''}array{'s' if count != 1 else ''} "
                               f"(record layout: {layouts})")
        for column, justify in (("array", "left"), ("dtype", "left"), ("shape", "left"), ("bytes", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for position, array in enumerate(document["arrays"]):
            name = array["name"] if array["name"] is not None else f"[{position}]"
            dtype = array["dtype"] + (" (read as float32)" if array["dtype"] == "bfloat16" else "")
            table.add_row(name, dtype, str(tuple(array["shape"])), human_bytes(array["bytes"]))
        totals = Text(f"{count} array{'s' if count != 1 else ''}, {human_bytes(document['total_bytes'])}")
        return Group(header, table, totals)
    header = Text.assemble((document["path"], "bold"), f"  MXNet symbol, {document['nodes']} nodes, "
                           f"{document['outputs']} output{'s' if document['outputs'] != 1 else ''}")
    table.add_column("operator")
    table.add_column("nodes", justify="right")
    table.add_column("converts", justify="left")
    for op, count in document["operators"].items():
        table.add_row(op, str(count), "no" if op in document["unsupported"] else "yes")
    variables = document["variables"]
    shown = ", ".join(variables[:6]) + (" ..." if len(variables) > 6 else "")
    return Group(header, Text(f"  variables ({len(variables)}): {shown}"), table)


def verify_report(path: PathOrFile, kind: MXNetKind) -> VerifyReport:
    """Read everything that can be checked; a problem goes in the report (exit 1), not raised.

    A file that cannot be opened still raises (a user error, exit 2)."""
    from ..format.verify import VerifyReport
    from ..interop.mxnet import ndarray
    from ..interop.mxnet.lowering import LOWERINGS
    from ..interop.mxnet.symbol import read_symbol

    report = VerifyReport(path=describe(path))
    try:
        if kind == "ndarray":
            index, _ = ndarray.read_arrays(path)
            for position, entry in enumerate(index.entries):
                report.tensors[entry.name if entry.name is not None else str(position)] = "ok"
            report.notes.append("an MXNet NDArray file has no checksums: every header and array was read")
        else:
            symbol = read_symbol(path)
            unsupported = sorted({n.op for n in symbol.nodes if n.op != "null" and n.op not in LOWERINGS})
            if unsupported:
                report.problems.append(f"operators modelpack cannot convert: {', '.join(unsupported)}")
            report.notes.append("an MXNet symbol: structure and operators checked (attributes are "
                                "checked by convert, with the parameters)")
    except PathError:
        raise  # cannot be read at all: the user's error
    except ModelpackError as exc:  # the bytes are wrong: what verify is for
        report.problems.append(str(exc))
    return report
