"""``gluon.parameter``: Gluon's module path for ``Parameter`` and ``ParameterDict``.

d2l's ``Module.parameters`` asks ``isinstance(params, gluon.parameter.ParameterDict)``; the
classes are ``modelpack.nn``'s own (declared in ``nn.parameter`` and ``nn.parameter_dict``).
"""

from __future__ import annotations

from ..nn.parameter import Parameter
from ..nn.parameter_dict import ParameterDict

__all__ = ["Parameter", "ParameterDict"]
