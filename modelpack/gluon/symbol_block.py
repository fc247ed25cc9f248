"""``gluon.SymbolBlock.imports``: Gluon's way to load a deployed model, reading modelpack
archives and MXNet exports alike.

>>> net = gluon.SymbolBlock.imports("mlp-symbol.json", ["data"], "mlp-0000.params")  # doctest: +SKIP
>>> net = gluon.SymbolBlock.imports("mlp-0000.mpk", ["data"])                        # doctest: +SKIP

Gluon returns a ``SymbolBlock`` that runs the saved graph; here the result is the model the
file describes (registered layers, else a ``GraphBlock``), called the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import UsageError
from ..interop import mxnet
from ..io.paths import PathOrFile, open_for_reading
from ..io.sniff import sniff
from ..nn.block import Block
from ..nn.graph import GraphBlock

__all__ = ["SymbolBlock"]


class SymbolBlock:
    """Only ``imports``: there is no symbolic graph to wrap (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise UsageError(
            "SymbolBlock(outputs, inputs) wraps an MXNet symbol, which modelpack does not have; "
            "load a saved model with gluon.SymbolBlock.imports(...) or modelpack.load(path)"
        )

    @staticmethod
    def imports(
        symbol_file: PathOrFile,
        input_names: str | Sequence[str],
        param_file: PathOrFile | None = None,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
    ) -> Block:
        """The model saved by ``net.export(path)``: an MXNet ``-symbol.json`` with its
        ``-0000.params`` (MXNet is not needed), or a modelpack archive (no ``param_file``).
        ``input_names`` are checked against the graph's inputs; ``ctx`` is accepted and ignored."""
        from .. import api  # late: the public verbs sit above gluon (they import the trainer's module)

        names = [input_names] if isinstance(input_names, str) else list(input_names)
        with open_for_reading(symbol_file) as handle:
            kind = sniff(handle).name
        if kind == "mpk":
            if param_file is not None:
                raise UsageError(
                    f"{symbol_file}: a modelpack archive holds its weights; imports takes no "
                    "param_file for it"
                )
            net = api.load(symbol_file)
        elif param_file is None:
            raise UsageError(f"{symbol_file}: imports needs the export's parameter file (its -0000.params)")
        else:
            net = mxnet.convert(
                symbol_file, param_file, allow_missing=allow_missing, ignore_extra=ignore_extra
            )
        if isinstance(net, GraphBlock) and net.graph is not None:
            # MXNet names its inputs ('data'); a traced archive numbers them (x0, x1, ...)
            found = [graph_input.name for graph_input in net.graph.inputs]
            if (found != names) if kind != "mpk" else (len(found) != len(names)):
                raise UsageError(f"{symbol_file}: the graph's inputs are {found}, not {names}")
        return net
