"""``ParameterDict``: parameters by structured name, with Gluon's ``ParameterDict`` methods.

``Block.params`` and ``Block.collect_params()`` return one. It is a ``dict`` (code that
iterates, indexes or passes it on keeps working), plus what Gluon code calls on it:
``get(name, shape=..., init=...)`` to declare a parameter (d2l's ``MyDense``), ``initialize``,
``setattr``, ``zero_grad``, ``save``/``load``. Gluon's flat names (``dense0_weight``) index it
too. Parameter files are read, written and matched in ``nn.loading``.

>>> class MyDense(nn.Block):  # doctest: +SKIP
...     def __init__(self, units, in_units):
...         super().__init__()
...         self.weight = self.params.get("weight", shape=(in_units, units))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np

from .. import random
from ..errors import (
    DtypeMismatchError,
    UsageError,
)
from ..io.paths import PathOrFile
from . import init as init_mod
from .devices import check_device, cpu
from .loading import LoadOptions, LoadReport, plan_load, read_parameter_file, write_parameter_file
from .parameter import GRAD_REQS, Parameter, parameter_rng

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

    from .block import Block

__all__ = ["ParameterDict", "InitOptions"]


class InitOptions(TypedDict, total=False):
    """``initialize``'s options after ``init`` (``Block``'s, passed on to ``ParameterDict``'s):
    ``force_reinit``, ``seed`` (values that depend only on it and each parameter's name), and
    Gluon's ``ctx`` and ``verbose``, accepted for Gluon code and ignored (numpy on the CPU)."""

    ctx: Any
    verbose: bool
    force_reinit: bool
    seed: int | None

# What ``get`` may set when it declares a parameter (Parameter's own constructor options).
_GET_OPTIONS = ("shape", "dtype", "init", "allow_deferred_init", "grad_req")
_NO_DEFAULT = object()


class ParameterDict(dict[str, Parameter]):
    """An ordered ``dict`` of structured name → ``Parameter`` with Gluon's methods.

    ``owner`` is the block whose own parameters these are (``block.params``): ``get`` then
    registers a new parameter on it. ``aliases`` maps Gluon's flat names to structured ones.
    """

    def __init__(
        self,
        params: Iterable[tuple[str, Parameter]] | Mapping[str, Parameter] = (),
        *,
        owner: Block | None = None,
        prefix: str = "",
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(params)
        self._owner = owner
        self._prefix = prefix
        self._aliases = dict(aliases or {})

    @property
    def prefix(self) -> str:
        """The owning block's Gluon prefix (``dense0_``), as Gluon's ``ParameterDict.prefix``."""
        return self._prefix

    def __missing__(self, key: str) -> Parameter:
        structured = self._aliases.get(key)
        if structured is not None and dict.__contains__(self, structured):
            return dict.__getitem__(self, structured)
        raise KeyError(f"no parameter {key!r}; parameters: {list(self)}")

    # -- declaring -------------------------------------------------------------------------
    def get(self, name: str, *default: Any, **options: Any) -> Any:
        """The parameter ``name``, created (and, for ``block.params``, registered) if missing.

        Options are Parameter's: ``shape`` (0 or -1 for a size not known yet), ``dtype``,
        ``init``, ``allow_deferred_init``, ``grad_req``. An existing parameter is returned
        after checking the options agree (unknown sizes of its shape are filled in). With a
        positional ``default``, this is ``dict.get``: nothing is created.
        """
        if default:
            if options or len(default) > 1:
                raise UsageError("ParameterDict.get(name, default) takes no other arguments")
            return super().get(name, default[0])
        unknown = sorted(set(options) - set(_GET_OPTIONS))
        if unknown:
            raise UsageError(f"ParameterDict.get: unknown options {unknown}; known: {list(_GET_OPTIONS)}")
        if "shape" in options:
            options["shape"] = _gluon_shape(options["shape"])
        existing = self._find(name)
        if existing is not None:
            _check_agrees(existing, options)
            return existing
        param = Parameter(name, **options)
        self[name] = param
        if self._owner is not None:
            self._owner._reg_params[name] = param
        return param

    def get_constant(self, name: str, value: Any = None) -> Parameter:
        """A parameter that holds ``value`` and never trains (grad_req ``"null"``), as Gluon's:
        ``initialize()`` fills it, ``save_parameters`` and ``export`` store it."""
        existing = self._find(name)
        if value is None:
            if existing is None:
                raise UsageError(f"get_constant({name!r}): no such constant yet; pass its value")
            return existing
        array = np.asarray(value)
        if existing is not None:
            raise UsageError(f"get_constant({name!r}, value): a parameter {name!r} exists already")
        return self.get(
            name, shape=array.shape, dtype=array.dtype, init=init_mod.Constant(array), grad_req="null"
        )

    def _find(self, name: str) -> Parameter | None:
        if name in self:
            return self[name]
        if self._owner is None:
            return None
        found = self._owner._reg_params.get(name)
        shared = self._owner._shared
        if found is None and shared is not None:
            found = shared.get(name, None)  # params=: the shared parameter becomes this block's too
            if found is not None:
                self._owner._reg_params[name] = found
        return found

    # -- acting on every parameter ----------------------------------------------------------
    def initialize(
        self,
        init: init_mod.Initializer | str | None = None,
        *,
        ctx: Any = None,
        verbose: bool = False,
        force_reinit: bool = False,
        seed: int | None = None,
    ) -> None:
        """Initialize every parameter (see ``Block.initialize``; the options are ``InitOptions``)."""
        if seed is None:  # drawn from modelpack.random's "init" stream, so random.seed() decides
            seed = int(random.generator("init").integers(2**63))
        for name, param in self.items():
            param.initialize(init, force_reinit=force_reinit, rng=parameter_rng(seed, name))

    def setattr(self, name: str, value: Any) -> None:
        """Set one attribute on every parameter: ``net.collect_params().setattr("grad_req", "null")``.

        Only existing public attributes may be set (a typo is an error, not a new attribute);
        ``dtype`` casts the data.
        """
        for param in self.values():
            if name.startswith("_") or not hasattr(param, name) or callable(getattr(param, name)):
                raise UsageError(f"Parameter has no settable attribute {name!r}")
            if name == "grad_req" and value not in GRAD_REQS:
                raise UsageError(f"grad_req must be one of {GRAD_REQS}, got {value!r}")
            if name == "dtype":
                param.cast(value)
            else:
                setattr(param, name, value)

    def zero_grad(self) -> None:
        """Set every gradient to zero; parameters without a gradient yet are left alone."""
        for param in self.values():
            zero = getattr(param, "zero_grad", None)
            if zero is not None:
                zero()

    def reset_ctx(self, ctx: Any) -> None:
        """Accepted for Gluon code when ``ctx`` names the CPU (nothing moves); a GPU is refused."""
        check_device(ctx)

    def list_ctx(self) -> list[str]:
        """The devices parameters live on: the CPU."""
        return [cpu()]

    # -- files ------------------------------------------------------------------------------
    def save(self, filename: PathOrFile, strip_prefix: str = "") -> None:
        """Write every parameter to an ``.npz`` file (atomically), ``strip_prefix`` taken off
        each name, as Gluon's ``ParameterDict.save``."""
        arrays: dict[str, np.ndarray] = {}
        for name, param in self.items():
            if not name.startswith(strip_prefix):
                raise UsageError(
                    f"cannot strip prefix {strip_prefix!r} from parameter {name!r}: it does not start with it"
                )
            arrays[name[len(strip_prefix):]] = param.array()
        write_parameter_file(filename, arrays)

    def load(
        self,
        filename: PathOrFile,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        restore_prefix: str = "",
        cast_dtype: bool = False,
        dtype_source: str = "current",
    ) -> None:
        """Fill the parameters from a file ``save`` (or ``Block.save_parameters``, or MXNet)
        wrote, ``restore_prefix`` put before each name in the file. All or nothing."""
        if dtype_source != "current":
            raise UsageError(f"dtype_source {dtype_source!r}: only 'current' is supported")
        arrays, source = read_parameter_file(filename, self)
        self.assign(
            {restore_prefix + name: array for name, array in arrays.items()},
            source=source, allow_missing=allow_missing, ignore_extra=ignore_extra,
            cast_dtype=cast_dtype,
        )

    def assign(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        source: str = "<arrays>",
        model: str = "the model",
        **options: Unpack[LoadOptions],
    ) -> LoadReport:
        """Set parameters from arrays by name after checking all of them (all or nothing); what
        was loaded, missing, unexpected or shape-mismatched (``nn.loading``)."""
        staged, report = plan_load(self, arrays, source=source, model=model, **options)
        for param, array in staged:
            param.set_data(array)
        return report

    def __repr__(self) -> str:
        lines = [f"  {param!r}" for param in self.values()]
        return "{} (\n{}\n)".format(self._prefix or "ParameterDict", "\n".join(lines))


def _gluon_shape(shape: Any) -> tuple[int, ...] | None:
    """Gluon marks an unknown size with 0 (legacy) or -1 (numpy mode); modelpack uses 0."""
    if shape is None:
        return None
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    return tuple(max(int(dim), 0) for dim in dims)


def _check_agrees(param: Parameter, options: Mapping[str, Any]) -> None:
    """An existing parameter fetched with options: the shape may fill in unknown sizes; the
    dtype and grad_req must match (Gluon's rule). The initializer is the parameter's own."""
    if "shape" in options and options["shape"] is not None:
        param.shape = options["shape"]  # ShapeMismatchError unless it only fills in unknown sizes
    if "dtype" in options and np.dtype(options["dtype"]) != param.dtype:
        raise DtypeMismatchError(
            f"parameter {param.name!r} exists with dtype {param.dtype.name}, asked for "
            f"{np.dtype(options['dtype']).name}"
        )
    if "grad_req" in options and options["grad_req"] != param.grad_req:
        raise UsageError(
            f"parameter {param.name!r} exists with grad_req {param.grad_req!r}, asked for "
            f"{options['grad_req']!r}"
        )

