"""``modelpack.np``: MXNet's short name for ``modelpack.numpy``, and the same module object,
as ``mxnet.np`` is ``mxnet.numpy`` (``import modelpack.np`` gives ``modelpack.numpy``)."""

from __future__ import annotations

import sys

from . import numpy as _numpy_module

sys.modules[__name__] = _numpy_module
