"""``modelpack.numpy.random`` (``np.random``): MXNet's ``np.random``, every draw from the
``"np"`` stream of ``modelpack.random``, so ``modelpack.random.seed`` (or MXNet's
``np.random.seed``) fixes them and a checkpoint carries their state.

Each of numpy's random functions is here under its own name (``normal``, ``multinomial``,
``dirichlet``, ...), drawn by the stream's ``Generator`` method of that name, plus numpy's
legacy spellings (``rand``, ``randn``, ``randint``, ``random_sample``, ...). Like MXNet's,
they take ``ctx=`` and make float32 where numpy would make float64. Any other name is
numpy.random's own (``default_rng``, ``Generator``, ...). d2l: ``from mxnet.numpy.random
import multinomial`` → ``from modelpack.numpy.random import multinomial``.

>>> from modelpack.numpy.random import multinomial
>>> multinomial(10, [0.5, 0.5]).sum()                                     # doctest: +SKIP
10
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as _numpy

from .. import random as _streams
from .creators import on_cpu

# numpy's legacy names for what a Generator calls otherwise; the sizes of rand and randn are
# their positional arguments.
_RENAMED = {"rand": "random", "randn": "standard_normal", "randint": "integers", "random_sample": "random",
            "ranf": "random", "sample": "random"}
_SIZES_AS_ARGUMENTS = ("rand", "randn")
# numpy.random's functions that are draws of a Generator under the same name (``shuffle``
# aside: it draws in place and returns nothing).
_SAME_NAME = (
    "beta", "binomial", "bytes", "chisquare", "choice", "dirichlet", "exponential", "f", "gamma",
    "geometric", "gumbel", "hypergeometric", "laplace", "logistic", "lognormal", "logseries",
    "multinomial", "multivariate_normal", "negative_binomial", "noncentral_chisquare", "noncentral_f",
    "normal", "pareto", "permutation", "poisson", "power", "random", "rayleigh", "standard_cauchy",
    "standard_exponential", "standard_gamma", "standard_normal", "standard_t", "triangular", "uniform",
    "vonmises", "wald", "weibull", "zipf",
)


def _draw(name: str) -> Callable[..., Any]:
    """numpy.random's ``name`` drawn from the ``"np"`` stream, as MXNet's np makes arrays."""
    method = _RENAMED.get(name, name)

    @on_cpu
    def draw(*args: Any, **kwargs: Any) -> Any:
        if name in _SIZES_AS_ARGUMENTS:  # rand(2, 3): the sizes as arguments
            args, kwargs = (), {"size": args or None}
        dtype = kwargs.pop("dtype", None)
        result = getattr(_streams.generator("np"), method)(*args, **kwargs)
        if not isinstance(result, (_numpy.ndarray, _numpy.generic, float, int)):
            return result  # (bytes)
        return _numpy.asarray(result, dtype=dtype) if dtype is not None else _numpy.asarray(result)

    draw.__name__ = draw.__qualname__ = name
    draw.__doc__ = f"numpy.random.{name}, drawn from modelpack.random's \"np\" stream (MXNet's np.random)."
    return draw


def seed(seed_state: int, ctx: Any = "all") -> None:
    """MXNet's ``np.random.seed``: seeds every stream of ``modelpack.random``."""
    _streams.seed(seed_state)


def shuffle(x: Any) -> None:
    """Shuffle ``x`` in place along its first axis, from the ``"np"`` stream."""
    _streams.generator("np").shuffle(x)


globals().update({name: _draw(name) for name in (*_SAME_NAME, *_RENAMED)})
__all__ = ["seed", "shuffle", *_SAME_NAME, *_RENAMED]


def __getattr__(name: str) -> Any:
    """numpy.random's other names (``default_rng``, ``Generator``, ...), as they are."""
    return getattr(_numpy.random, name)
