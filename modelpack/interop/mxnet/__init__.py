"""MXNet's files without MXNet: NDArray files (``npx.save``, Gluon ``.params``) and
hybridized Gluon exports (``-symbol.json`` + ``-0000.params``).

- ``ndarray``: the NDArray file reader (read-only; every field checked before allocation).
- ``symbol``: MXNet's symbol JSON → a modelpack model (registered layers, else a graph).
- ``conversion``: the public entry, ``convert(...)``, and the Gluon name mapping for weights
  (with ``lowering``: each operator's translation into layers, ``spatial``: convolution,
  pooling, padding and normalisation in 1 to 3 dimensions, ``recurrent``: the fused RNN
  operator, ``graph_ops``: operators that become graph ops, ``builder``: assembling the
  model, ``reshape``: MXNet's reshape codes).

Like every translator it may import the core (``nn``, ``format``, ``io``, ``errors``); the
core imports it only lazily, when a file of its kind is read (``interop.convert``, the CLI
and users import it directly).

>>> from modelpack.interop import mxnet
>>> x, y = mxnet.load("x-files")                                   # doctest: +SKIP
>>> net = mxnet.convert("mlp-symbol.json", "mlp-0000.params")      # doctest: +SKIP
"""

from __future__ import annotations

from .conversion import convert, gluon_parameters, match_names, match_parameters
from .ndarray import is_ndarray_file, load, scan

__all__ = [
    "convert", "gluon_parameters", "match_names", "match_parameters", "is_ndarray_file", "load", "scan",
]
