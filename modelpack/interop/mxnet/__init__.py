"""MXNet's files without MXNet: NDArray files (``npx.save``, Gluon ``.params``) and
hybridized Gluon exports (``-symbol.json`` + ``-0000.params``).

- ``ndarray``: the NDArray file reader (read-only; every field checked before allocation).
- ``symbol``: MXNet's symbol JSON → a modelpack model (registered layers, else a graph).
- ``convert``: the public entry, ``convert(...)``, and the Gluon name mapping for weights.

>>> from modelpack.interop import mxnet
>>> x, y = mxnet.load("x-files")                                   # doctest: +SKIP
>>> net = mxnet.convert("mlp-symbol.json", "mlp-0000.params")      # doctest: +SKIP
"""

from __future__ import annotations

from .convert import convert, gluon_parameters, match_parameters
from .ndarray import is_ndarray_file, load, scan

__all__ = ["convert", "gluon_parameters", "match_parameters", "is_ndarray_file", "load", "scan"]
