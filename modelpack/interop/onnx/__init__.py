"""ONNX files both ways (with the ``onnx`` extra: onnx and onnxruntime).

- ``export``: ``to_onnx(net, path, example=None)``, walking the model once (``emitter``: the
  shared state; ``export_layers``: a table entry per layer type, ``export_recurrent``: the
  recurrent layers and cells, which take and give states; ``export_ops``: a table entry per op,
  with ``export_ops_math``, ``export_ops_layout`` and ``export_ops_indexing`` by family).
  Every registered layer type and op has an entry (a test checks it), or a stated reason
  (``export_recurrent.REFUSED``).
- ``runtime``: ``net.hybridize(backend="onnxruntime")``'s engine: a Block's inference calls
  exported with ``export`` and run by onnxruntime, numpy the reference and the fallback.
- ``importer``: ``from_onnx(path)``, an ONNX graph of ops modelpack has as a modelpack model
  (``import_ops``: a table entry per ONNX operator, with ``import_ops_more``; ``import_layers``
  and ``import_recurrent``: those that are layers; ``import_patterns``: several nodes that
  mean one activation; ``import_shapes``: the output shapes onnx's shape inference lost, so
  that shape arithmetic on a dynamic batch folds). The file is parsed by onnx's own protobuf
  parser, its sizes checked against ``Limits``; nothing in it is ever run (small constant
  layout subgraphs are folded by onnx's reference implementation of those operators).

Like every translator it may import the core (``nn``, ``format``, ``io``, ``errors``); the
core imports it only lazily, when a file of its kind is read (``interop.convert``, the CLI
and users import it directly).

>>> from modelpack.interop import onnx as mo
>>> mo.to_onnx(net, "net.onnx", example=x)      # doctest: +SKIP
>>> net2 = mo.from_onnx("net.onnx")             # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import UsageError

__all__ = ["to_onnx", "from_onnx"]


def __getattr__(name: str) -> Any:
    """Both verbs import onnx, so they load on first use only (and say what to install)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import export, importer
    except ImportError as exc:
        raise UsageError(
            f"modelpack's ONNX translators need onnx and onnxruntime: pip install 'modelpack[onnx]' ({exc})"
        ) from None
    return export.to_onnx if name == "to_onnx" else importer.from_onnx


if TYPE_CHECKING:
    from .export import to_onnx as to_onnx
    from .importer import from_onnx as from_onnx
