"""``Block`` and ``Sequential``: the Gluon-style containers every layer builds on.

Children and parameters are registered by attribute assignment, in order. Parameters are
found by one walker, ``collect_params()``, which yields structured dotted names
(``hidden.weight``, ``0.bias``) — the keys of parameter files and archive weight bundles.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..errors import (
    DtypeMismatchError,
    ExtraParameterError,
    FormatError,
    MissingParameterError,
    ShapeMismatchError,
)
from ..io import npz
from ..io.paths import PathOrFile, atomic_writer, describe, open_for_reading
from ..io.sniff import is_mxnet, refuse_other_kind
from . import hooks
from . import init as init_mod
from .parameter import Parameter, parameter_rng, shapes_compatible
from .registry import LayerConfig, register_layer

__all__ = ["Block", "Sequential"]


class Block:
    """Base class of every layer and model: owns child blocks and parameters.

    Subclasses assign children and parameters as attributes in ``__init__`` and implement
    ``forward``. ``prefix`` is accepted for Gluon compatibility and otherwise unused: names
    are structured (``hidden.weight``), not prefixed.
    """

    _children: dict[str, Block]
    _reg_params: dict[str, Parameter]
    _prefix: str

    def __init__(self, prefix: str | None = None) -> None:
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "_reg_params", {})
        object.__setattr__(self, "_prefix", prefix or "")

    # -- registration ----------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_children" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        self._children.pop(name, None)
        self._reg_params.pop(name, None)
        if isinstance(value, Block):
            self._children[name] = value
        elif isinstance(value, Parameter):
            self._reg_params[name] = value
        object.__setattr__(self, name, value)

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
    def params(self) -> Mapping[str, Parameter]:
        """This block's own parameters (not its children's), by attribute name."""
        return dict(self._reg_params)

    @property
    def name(self) -> str:
        """The class name in lower case plus the prefix, for Gluon-style display."""
        return self._prefix or type(self).__name__.lower()

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

    def collect_params(self, select: str | None = None) -> dict[str, Parameter]:
        """Ordered mapping of structured name → Parameter; ``select`` is a regex filter."""
        pattern = re.compile(select) if select else None
        collected: dict[str, Parameter] = {}
        for name, param in self.named_parameters():
            param.structured_name = name
            if pattern is None or pattern.match(name):
                collected[name] = param
        return collected

    def initialize(
        self,
        init: init_mod.Initializer | str | None = None,
        *,
        force_reinit: bool = False,
        seed: int | None = None,
    ) -> None:
        """Give every parameter first values (deferred where shapes are not known yet).

        ``init`` applies to parameters without their own initializer (weights; biases keep
        ``zeros``), defaulting to Gluon's ``Uniform(0.07)``. With ``seed``, each parameter's
        values depend only on the seed and its structured name, so results are reproducible.
        """
        for name, param in self.collect_params().items():
            param.initialize(init, force_reinit=force_reinit, rng=parameter_rng(seed, name))

    def cast(self, dtype: str | np.dtype) -> None:
        """Cast every parameter (and the layers' compute dtype) to ``dtype``."""
        for _, block in self.named_blocks():
            if hasattr(block, "_dtype"):
                object.__setattr__(block, "_dtype", np.dtype(dtype))
            for param in block._reg_params.values():
                param.cast(dtype)

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
        arrays = {name: param.data() for name, param in self.collect_params().items()}
        with atomic_writer(filename) as handle:
            npz.write_npz(handle, arrays)

    def load_parameters(
        self,
        filename: PathOrFile,
        *,
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
    ) -> None:
        """Fill parameters from an ``.npz`` file written by ``save_parameters`` (never unpickles),
        or from a Gluon parameter file (MXNet's ``save_parameters`` or an export's ``.params``).

        Deferred shapes are filled from the file. Missing, extra, wrong-shape and wrong-dtype
        parameters are refused unless the matching option allows them; nothing is changed
        unless everything checks out. Gluon's ``arg:``/``aux:`` prefixes are dropped, and its
        flat names (``dense0_weight``) match structured ones (``dense0.weight``).
        """
        source = describe(filename)
        with open_for_reading(filename) as handle:
            if is_mxnet(handle):
                from ..interop.mxnet import gluon_parameters, match_parameters  # only for its files

                arrays = match_parameters(gluon_parameters(handle), self.collect_params())
            else:
                try:
                    arrays = npz.read_npz(handle, source=source)
                except FormatError:
                    refuse_other_kind(handle, source, expected="npz")  # an archive, torch's, ...
                    raise
        self.set_parameters(
            arrays,
            source=source,
            allow_missing=allow_missing,
            ignore_extra=ignore_extra,
            cast_dtype=cast_dtype,
        )

    def set_parameters(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        source: str = "<arrays>",
        allow_missing: bool = False,
        ignore_extra: bool = False,
        cast_dtype: bool = False,
    ) -> None:
        """Assign arrays by structured name after checking all of them (all or nothing)."""
        params = self.collect_params()
        if params and not any(name in arrays for name in params):
            model = type(self).__name__
            raise MissingParameterError(_nothing_matches(source, model, list(params), list(arrays)))
        if not ignore_extra:
            extra = [name for name in arrays if name not in params]
            if extra:
                raise ExtraParameterError(
                    f"{source}: parameter {extra[0]!r} is in the file but not in the model "
                    f"{type(self).__name__} (extra: {extra}; model has: {list(params)}); "
                    "pass ignore_extra=True to skip it"
                )
        staged: list[tuple[Parameter, np.ndarray]] = []
        for name, param in params.items():
            if name not in arrays:
                if allow_missing:
                    continue
                raise MissingParameterError(
                    f"{source}: parameter {name!r} (expected shape {param.shape}, dtype "
                    f"{param.dtype.name}) is missing from the file, which has: "
                    f"{list(arrays)}; pass allow_missing=True to leave it as is"
                )
            array = np.asarray(arrays[name])
            if not shapes_compatible(param.shape, array.shape):
                raise ShapeMismatchError(
                    f"{source}: parameter {name!r} expected shape {param.shape} "
                    f"(0 = not known yet), found {array.shape}"
                )
            if array.dtype != param.dtype:
                if not cast_dtype:
                    raise DtypeMismatchError(
                        f"{source}: parameter {name!r} expected dtype {param.dtype.name}, "
                        f"found {array.dtype.name}; pass cast_dtype=True to convert"
                    )
                array = array.astype(param.dtype)
            staged.append((param, array))
        for param, array in staged:
            param.set_data(array)

    # -- calling -----------------------------------------------------------------------------
    def __call__(self, *args: Any) -> Any:
        interceptor = hooks.active()
        if interceptor is not None:
            return interceptor.call_block(self, args)
        return self.forward(*args)

    def forward(self, *args: Any) -> Any:
        """Compute the block's output; subclasses override this."""
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

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


class SequentialConfig(LayerConfig):
    pass


@register_layer("Sequential", config=SequentialConfig, container=True)
class Sequential(Block):
    """Stacks blocks; ``forward`` feeds each one's output to the next.

    >>> net = Sequential(); net.add(Dense(8, activation="relu"), Dense(2))  # doctest: +SKIP
    """

    def __init__(self, prefix: str | None = None) -> None:
        super().__init__(prefix=prefix)

    def add(self, *blocks: Block) -> None:
        """Append blocks; they are named by position ("0", "1", ...)."""
        for block in blocks:
            if not isinstance(block, Block):
                raise TypeError(f"Sequential.add expects Blocks, got {type(block).__name__}")
            self.register_child(block)

    def forward(self, x: Any) -> Any:
        for block in self._children.values():
            x = block(x)
        return x

    def get_config(self) -> dict[str, Any]:
        return {}

    def __getitem__(self, key: int | slice) -> Any:
        layers = list(self._children.values())
        if isinstance(key, slice):
            net = type(self)()
            net.add(*layers[key])
            return net
        return layers[key]

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self) -> Iterator[Block]:
        return iter(list(self._children.values()))


def _indent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [" " * spaces + line for line in lines[1:]])


def _nothing_matches(source: str, model: str, params: list[str], names: list[str]) -> str:
    """Why loading would change nothing, with the prefix that would make the names meet."""
    message = (
        f"{source}: none of the file's {len(names)} names matches a parameter of {model}, so "
        f"nothing would be loaded (file: {names[:3]}{' ...' if len(names) > 3 else ''}; "
        f"model: {params[:3]}{' ...' if len(params) > 3 else ''})"
    )
    for longer, shorter, side in ((names, params, "file's"), (params, names, "model's")):
        prefixes = sorted({a[: -len(b)] for a in longer for b in shorter if a.endswith("." + b)})
        if prefixes:
            listed = " or ".join(repr(p) for p in prefixes[:4])
            return f"{message}; the {side} names match once the prefix {listed} is taken off"
    return message
