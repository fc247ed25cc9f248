"""PyTorch's files and modules: state_dict files read without torch, and modules translated
both ways between torch and modelpack (with torch installed: the ``torch`` extra).

- ``state_dict``: ``torch.save`` files without torch (``unpickler``: the restricted pickle reader;
  ``numpy_values``: numpy's scalars and arrays in those files).
- ``layers``: the one table of layer types both sides know (``translations``,
  ``translations_norm``, ``translations_recurrent``: each family's config and parameter mapping).
- ``bridge``: ``from_torch`` / ``to_torch``, walking modules with that table (imports torch).

Like every translator it may import the core (``nn``, ``format``, ``io``, ``errors``); the
core imports it only lazily, when a file of its kind is read (``interop.convert``, the CLI
and users import it directly).

>>> from modelpack.interop import torch as mt
>>> arrays = mt.read_state_dict("model.pt")        # doctest: +SKIP  (no torch needed)
>>> net = mt.from_torch(torch_module)              # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .layers import ROWS, rename_state_dict
from .state_dict import Flattened, flatten, is_torch_zip, load, read_state_dict

__all__ = ["from_torch", "to_torch", "read_state_dict", "load", "flatten", "Flattened", "is_torch_zip",
           "rename_state_dict", "ROWS"]


def __getattr__(name: str) -> Any:
    """``from_torch`` and ``to_torch`` import torch, so they load on first use only."""
    if name in ("from_torch", "to_torch"):
        from . import bridge

        return getattr(bridge, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .bridge import from_torch as from_torch
    from .bridge import to_torch as to_torch
