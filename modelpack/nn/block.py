"""``Block``: the Gluon-style base every layer and model builds on (``Sequential`` is in
``nn.compose``).

Children and parameters are registered by attribute assignment, in order. Parameters are
found by one walker, ``collect_params()``, which yields structured dotted names
(``hidden.weight``, ``0.bias``) — the keys of parameter files and archive weight bundles.
Each instance also gets a unique Gluon name (``dense0``, ``dense1``, ...; ``prefix`` sets it),
which d2l's ``MySequential`` uses as its children's keys.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import DtypeMismatchError, ShapeMismatchError, UnsupportedBlockError
from ..io.paths import PathOrFile
from . import budget, devices, hooks, scope
from . import init as init_mod
from .gluon_api import GluonAPI
from .loading import LoadOptions, LoadReport, LoadSelection, read_parameter_file, write_parameter_file
from .parameter import Parameter
from .parameter_dict import InitOptions, ParameterDict
from .registry import config_model_of, type_name_of

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing's own from Python 3.11

__all__ = ["Block", "HybridBlock"]

# Gluon's instance names: a counter per name hint ("dense" -> dense0, dense1, ...), shared by
# the whole process as Gluon's name manager is outside any name_scope.
_name_counters: dict[str, Iterator[int]] = {}
_name_lock = threading.Lock()


def _unique_name(hint: str) -> str:
    with _name_lock:
        counter = _name_counters.setdefault(hint, itertools.count())
        return f"{hint}{next(counter)}"


class Block(GluonAPI):
    """Base class of every layer and model: owns child blocks and parameters.

    Subclasses assign children and parameters as attributes in ``__init__`` (or declare
    parameters with ``self.params.get``) and implement ``forward`` (or Gluon 1.x's
    ``hybrid_forward(F, x, **params)``). ``prefix`` sets the Gluon name (``name``, ``prefix``);
    parameter names stay structured (``hidden.weight``) whatever it is.
    """

    _children: dict[str, Block]
    _reg_params: dict[str, Parameter]
    _prefix: str
    _shared: Mapping[str, Parameter] | None
    # Set on every block of a loaded model (budget.limit_activations): forward runs inside
    # the activation budget. None for models built in code, unless their user asks.
    _activation_guard: budget._Guard | None = None

    def __init__(self, prefix: str | None = None, params: Mapping[str, Parameter] | None = None) -> None:
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_reg_params", {})
        if prefix is None:
            prefix = _unique_name(self._alias()) + "_"
        object.__setattr__(self, "_prefix", prefix)
        # Gluon's parameter sharing: Dense(8, params=shared.params) uses shared's weight and
        # bias (by parameter name) instead of creating its own.
        object.__setattr__(self, "_shared", params)

    def _alias(self) -> str:
        """The hint of Gluon's automatic names (``dense`` for ``dense0``); layers may override."""
        return type(self).__name__.lower()

    # -- registration ----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_children" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if self._children.get(name, self._reg_params.get(name)) is not value:
            self._children.pop(name, None)
            self._reg_params.pop(name, None)
            if isinstance(value, Block):
                self._children[name] = value
            elif isinstance(value, Parameter):
                value = self._adopt_shared(value)
                if all(p is not value for p in self._reg_params.values()):
                    # A parameter declared with self.params.get(...) keeps its name and place.
                    self._reg_params[name] = value
        object.__setattr__(self, name, value)

    def _adopt_shared(self, param: Parameter) -> Parameter:
        """The parameter of the same name in ``params=`` (shared), else ``param`` itself; the
        shared one's unknown sizes are filled from ``param``'s."""
        # get(name, None): a ParameterDict's one-argument get would create the parameter
        shared = self._shared.get(param.name, None) if self._shared is not None else None
        if shared is None or shared is param:
            return param
        if shared.dtype != param.dtype:
            raise DtypeMismatchError(
                f"shared parameter {param.name!r} has dtype {shared.dtype.name}, this "
                f"{type(self).__name__} needs {param.dtype.name}"
            )
        old, new = shared.shape, param.shape
        if len(old) != len(new) or any(a and b and a != b for a, b in zip(old, new, strict=False)):
            raise ShapeMismatchError(
                f"shared parameter {param.name!r} has shape {old}, this {type(self).__name__} "
                f"needs {new} (0 = not known yet)"
            )
        shared.shape = tuple(a or b for a, b in zip(old, new, strict=True))
        return shared

    def __delattr__(self, name: str) -> None:
        self._children.pop(name, None)
        self._reg_params.pop(name, None)
        object.__delattr__(self, name)

    def register_child(self, block: Block, name: str | None = None) -> None:
        """Add a child under ``name`` (default: its position), as ``Sequential.add`` does."""
        self._children[name if name is not None else str(len(self._children))] = block

    @property
    def children(self) -> Mapping[str, Block]:
        """Child blocks in registration order, by attribute (or position) name."""
        return dict(self._children)

    @property
    def params(self) -> ParameterDict:
        """This block's own parameters (not its children's), by attribute name; ``get`` on it
        declares a new one (``self.params.get("weight", shape=(4, 3))``)."""
        aliases = {self._prefix + p.name: name for name, p in self._reg_params.items()}
        return ParameterDict(self._reg_params, owner=self, prefix=self._prefix, aliases=aliases)

    @property
    def name(self) -> str:
        """Gluon's instance name: ``dense0``, ``dense1``, ... per class, or the prefix given."""
        return self._prefix[:-1] if self._prefix.endswith("_") else self._prefix

    @property
    def prefix(self) -> str:
        """Gluon's prefix: the name followed by ``_`` (``dense0_``), or as given."""
        return self._prefix

    # -- parameters --------------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (structured name, parameter): own parameters first, then each child's.

        A parameter shared between blocks is yielded once, under its first name.
        """
        seen: set[int] = set()
        for name, param in self._walk(prefix):
            if id(param) not in seen:
                seen.add(id(param))
                yield name, param

    def _walk(self, prefix: str) -> Iterator[tuple[str, Parameter]]:
        for name, param in self._reg_params.items():
            yield prefix + name, param
        for child_name, child in self._children.items():
            yield from child._walk(f"{prefix}{child_name}.")

    def collect_params(self, select: str | None = None) -> ParameterDict:
        """Every parameter by structured name, in order, as a ``ParameterDict``.

        ``select`` is a regex matched at the start of each structured name or of its Gluon
        name (``dense0_weight``), so Gluon's ``collect_params(".*weight")`` works unchanged.
        Gluon names also index the result: ``net.collect_params()["dense0_weight"]``.
        """
        pattern = re.compile(select) if select else None
        gluon_names = self._gluon_names()
        collected: dict[str, Parameter] = {}
        for name, param in self.named_parameters():
            param.structured_name = name
            gluon = gluon_names.get(id(param), "")
            if pattern is None or pattern.match(name) or pattern.match(gluon):
                collected[name] = param
        aliases = {gluon_names[id(p)]: name for name, p in collected.items() if id(p) in gluon_names}
        return ParameterDict(collected, prefix=self._prefix, aliases=aliases)

    def _gluon_names(self) -> dict[int, str]:
        """Gluon's flat name (owner's prefix + parameter name) of each parameter, by identity."""
        names: dict[int, str] = {}
        for _, block in self.named_blocks():
            for param in block._reg_params.values():
                names.setdefault(id(param), block._prefix + param.name)
        return names

    def initialize(
        self, init: init_mod.Initializer | str | None = None, **options: Unpack[InitOptions]
    ) -> None:
        """Give every parameter first values (deferred where shapes are not known yet).

        ``init`` applies to parameters without their own initializer (weights; biases keep
        ``zeros``), defaulting to Gluon's ``Uniform(0.07)``. With ``seed``, each parameter's
        values depend only on the seed and its structured name, so results are reproducible;
        without, the seed is drawn from ``modelpack.random``'s ``"init"`` stream. The options
        are ``nn.parameter_dict.InitOptions``: ``force_reinit``, ``seed``, and Gluon's ``ctx`` and
        ``verbose`` (accepted and ignored: numpy on the CPU).
        """
        self.collect_params().initialize(init, **options)

    def apply(self, fn: Callable[[Block], Any]) -> Block:
        """Call ``fn`` on every descendant, then on this block (Gluon's order); returns self."""
        for child in self._children.values():
            child.apply(fn)
        fn(self)
        return self

    def named_blocks(self, prefix: str = "") -> Iterator[tuple[str, Block]]:
        """Yield (dotted path, block) for this block ("" or ``prefix``) and every descendant,
        depth first in registration order; a block reachable twice is yielded twice."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.named_blocks(f"{prefix}.{name}" if prefix else name)

    # -- parameter files -------------------------------------------------------------------
    def save_parameters(self, filename: PathOrFile) -> None:
        """Write every parameter to a standard ``.npz`` file, keyed by structured name.

        The path is used exactly as given, and the write is atomic.

        >>> net.save_parameters("mlp.params")  # doctest: +SKIP
        """
        write_parameter_file(filename, {name: param.array() for name, param in self.collect_params().items()})

    def load_parameters(
        self,
        filename: PathOrFile,
        ctx: Any = None,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
        **selection: Unpack[LoadSelection],
    ) -> LoadReport:
        """Fill parameters from an ``.npz`` file written by ``save_parameters`` (never unpickles),
        from a Gluon parameter file (MXNet's ``save_parameters`` or an export's ``.params``), or
        from a torch ``state_dict`` file (``torch.save``; read without torch, nothing unpickled).

        Deferred shapes are filled from the file. ``rename={old_prefix: new_prefix}`` maps the
        file's names to the model's; ``select`` (a regex matched at the start of the model's
        names) limits the load to those parameters. Missing, extra, wrong-shape and wrong-dtype
        parameters are refused unless the matching option allows them (``ignore_mismatch``
        for shapes); nothing is changed unless everything checks out. Gluon's ``arg:``/``aux:``
        prefixes are dropped, and its
        flat names (``dense0_weight``) match structured ones (``dense0.weight``); torch's names
        are mapped layer by layer (BatchNorm's ``weight`` is ``gamma``; ``num_batches_tracked``
        is dropped). ``ctx`` is accepted for Gluon code and ignored. Returns what was loaded,
        missing, unexpected or shape-mismatched.
        """
        arrays, source = read_parameter_file(filename, self.collect_params(), self)
        return self.set_parameters(
            arrays, source=source, allow_missing=allow_missing, ignore_extra=ignore_extra,
            cast_dtype=cast_dtype, **selection,
        )

    def set_parameters(
        self, arrays: Mapping[str, np.ndarray], *, source: str = "<arrays>", **options: Unpack[LoadOptions]
    ) -> LoadReport:
        """Assign arrays by structured name after checking all of them (all or nothing); the
        options are ``load_parameters``'s (``nn.loading.LoadOptions``)."""
        return self.collect_params().assign(arrays, source=source, model=type(self).__name__, **options)

    # -- config ------------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this layer, as the archive stores them: each
        field of its registered config model, read from the attribute ``self._<field>``.

        A layer whose value is derived rather than stored (an input size read from a weight's
        shape) overrides this with ``return self.config_from_attributes(in_units=...)``.
        """
        return self.config_from_attributes()

    def config_from_attributes(self, **derived: Any) -> dict[str, Any]:
        """The config model's fields in order: ``derived`` values as given, the others read from
        ``self._<field>``; tuples become lists and dtypes their names (YAML has neither)."""
        model = config_model_of(type(self))
        if model is None:
            raise UnsupportedBlockError(
                f"{type(self).__name__} is not a registered layer type, so it has no config; "
                "export traces its forward instead (example=)"
            )
        unknown = derived.keys() - model.model_fields.keys()
        if unknown:
            raise TypeError(f"{type(self).__name__}: {sorted(unknown)} are not fields of {model.__name__}")
        return {
            field: _plain(derived[field] if field in derived else getattr(self, "_" + field))
            for field in model.model_fields
        }

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, *args: Any) -> Any:
        interceptor = hooks.active()
        if interceptor is not None and not interceptor.sees_real_values:
            return interceptor.call_block(self, args)  # tracing: stand-ins, no hooks
        call = self._call if interceptor is None else (lambda *a: interceptor.call_block(self, a))
        custom = type_name_of(self) is None  # a user's forward, not a registered layer's
        if not custom and not scope.in_user_code():
            if scope.in_layer():  # called by a layer: plain arrays, as the kernels take them
                return self._call_hooked(call, args)
            # called by a script, which gets MXNet's NDArray
            return devices.on_device(scope.outermost(self._call_hooked, call, args))
        # A user's forward sees MXNet's device API (d2l's X.ctx) on its inputs and on what
        # the blocks it calls return.
        with scope.user_code(custom):
            out = self._call_hooked(call, devices.on_device(args) if custom else args)
        return devices.on_device(out)

    def _call_hooked(self, call: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self._hybridized and hooks.active() is None:
            object.__setattr__(self, "_last_inputs", args)
        if self._forward_hooks is not None:
            return self._forward_hooks.run(self, args, call)
        return call(*args)

    def _call(self, *args: Any) -> Any:
        if self._runtime is not None:  # hybridize(backend=...): the runtime, or back here
            return self._runtime.run(self, args, self._call_numpy)
        return self._call_numpy(*args)

    def _call_numpy(self, *args: Any) -> Any:
        if self._activation_guard is not None:
            return budget.guarded_call(self, self._activation_guard, args)
        return self.forward(*args)

    def forward(self, *args: Any) -> Any:
        """Compute the block's output; subclasses override this (or define Gluon 1.x's
        ``hybrid_forward(F, x, ...)``, called with ``F`` and the block's own parameters' data)."""
        hybrid_forward = getattr(self, "hybrid_forward", None)
        if hybrid_forward is None:
            raise NotImplementedError(f"{type(self).__name__} does not implement forward()")
        from . import functional  # late: the op table imports the layer library

        params = {name: param.data() for name, param in self._reg_params.items()}
        return hybrid_forward(functional, *args, **params)

    def summary_lines(self) -> list[str]:
        """One line per child for ``__repr__``."""
        return [
            f"  ({key}): {_indent(repr(block), 2)}" for key, block in self._children.items()
        ]

    def __repr__(self) -> str:
        lines = self.summary_lines()
        if not lines:
            return f"{type(self).__name__}()"
        return "{}(\n{}\n)".format(type(self).__name__, "\n".join(lines))


def _plain(value: Any) -> Any:
    """A config value as YAML and the config model hold it: lists for tuples, names for dtypes."""
    if isinstance(value, np.dtype):
        return value.name
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


# Gluon's hybrid variant is the same class: a modelpack block is exported by tracing, so
# there is nothing to hybridize (``hybridize()`` is accepted and changes nothing).
HybridBlock = Block
