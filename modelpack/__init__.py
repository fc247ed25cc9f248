"""modelpack: a neural network's architecture and weights together in one safe archive.

Public API on one screen; everything else is an implementation detail. Submodules load on
first use (PEP 562), so ``import modelpack`` costs almost nothing until a function is called.

>>> import modelpack
>>> modelpack.export(net, "mlp.mpk"); net2 = modelpack.load("mlp.mpk")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import *  # noqa: F403  (the exception tree: tiny, and listed once, in errors.__all__)
from .errors import __all__ as _ERROR_NAMES

# Public name -> (module, attribute); the module is imported when the name is first used.
_LAZY: dict[str, tuple[str, str]] = {
    "nn": ("modelpack.nn", ""),
    "autograd": ("modelpack.autograd", ""),
    "gluon": ("modelpack.gluon", ""),
    "random": ("modelpack.random", ""),
    "Checkpointer": ("modelpack.checkpoint", "Checkpointer"),
    "export": ("modelpack.api", "export"),
    "load": ("modelpack.api", "load"),
    "save": ("modelpack.api", "save"),
    "inspect": ("modelpack.api", "inspect"),
    "verify": ("modelpack.api", "verify"),
    "open": ("modelpack.api", "open_archive"),
    "Archive": ("modelpack.format.archive", "Archive"),
    "VerifyReport": ("modelpack.format.verify", "VerifyReport"),
    "Limits": ("modelpack.io.limits", "Limits"),
    "convert": ("modelpack.interop.convert", "convert"),
    "npx": ("modelpack.npx", ""),
    "init": ("modelpack.nn.init", ""),
    "np": ("modelpack.numpy", ""),
    "numpy": ("modelpack.numpy", ""),
    "lr_scheduler": ("modelpack.lr_scheduler", ""),
    "metric": ("modelpack.metric", ""),
    "context": ("modelpack.context", ""),
    "ndarray": ("modelpack.ndarray", ""),
    "nd": ("modelpack.ndarray", ""),
    "image": ("modelpack.image", ""),
}

# The public API: the verbs and types here, then the exception tree (errors.__all__).
__all__ = [
    "__version__", "nn", "autograd", "gluon", "random", "Checkpointer", "export", "load", "save",
    "inspect", "verify", "open", "Archive", "VerifyReport", "Limits", "convert", "npx", "init", "np", "numpy",
    "lr_scheduler", "metric", "context", "ndarray", "nd", "image", *_ERROR_NAMES,
]


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first use, then cache the attribute."""
    try:
        module_name, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'modelpack' has no attribute {name!r}") from None
    module = importlib.import_module(module_name)
    value = getattr(module, attribute) if attribute else module
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static analysers see the real imports (``as`` marks a re-export)
    from . import autograd as autograd
    from . import context as context
    from . import gluon as gluon
    from . import image as image
    from . import lr_scheduler as lr_scheduler
    from . import metric as metric
    from . import ndarray as nd
    from . import ndarray as ndarray
    from . import nn as nn
    from . import npx as npx
    from . import numpy as np
    from . import numpy as numpy
    from . import random as random
    from .api import export as export
    from .api import inspect as inspect
    from .api import load as load
    from .api import open_archive as open  # noqa: A004  (modelpack.open, like tarfile.open)
    from .api import save as save
    from .api import verify as verify
    from .checkpoint import Checkpointer as Checkpointer
    from .format.archive import Archive as Archive
    from .format.verify import VerifyReport as VerifyReport
    from .interop.convert import convert as convert
    from .io.limits import Limits as Limits
    from .nn import init as init
