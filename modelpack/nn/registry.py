"""The registry of known layer types: a dict from stable type name to (class, config model).

An archive may only name types found here; nothing is ever imported by a name read from a
file. Layers register with a decorator:

>>> @register_layer("Dense", config=DenseConfig)  # doctest: +SKIP
... class Dense(Block): ...
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict

from ..errors import UnknownLayerError

if TYPE_CHECKING:
    from .block import Block

__all__ = [
    "LayerConfig", "LayerType", "register_layer", "layer_type", "type_name_of", "config_model_of",
    "known_layers", "files_in",
]

BlockT = TypeVar("BlockT", bound="type[Block]")
EntryT = TypeVar("EntryT")


class LayerConfig(BaseModel):
    """Base of every layer's config model: the constructor arguments that define the layer.

    Strict and closed: an unknown or mistyped field is an error, never silently dropped.
    Initializers are not part of a config: an archive carries the weights themselves.
    """

    # defer_build: schemas are built on first use, which keeps `import modelpack` quick.
    # ser_json_inf_nan: a non-finite float (a graph scalar inside GraphConfig) stays a float
    # when dumped to JSON-able data; pydantic's default turns it into None (null).
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, defer_build=True, ser_json_inf_nan="constants"
    )


@dataclass(frozen=True)
class LayerType:
    """One registered type: its archive name, its class, its config model, container or not."""

    name: str
    cls: type[Block]
    config: type[LayerConfig]
    container: bool

    def build(self, config: dict[str, Any]) -> Block:
        """Construct the layer from an already validated config."""
        return self.cls(**config)


_BY_NAME: dict[str, LayerType] = {}
_BY_CLASS: dict[type, LayerType] = {}


def register_layer(
    name: str, *, config: type[LayerConfig], container: bool = False
) -> Callable[[BlockT], BlockT]:
    """Class decorator adding a layer type under ``name``; names are unique forever.

    ``container=True`` marks blocks whose children are listed in the archive (Sequential).
    """

    def add(cls: BlockT) -> BlockT:
        existing = _BY_NAME.get(name)
        if existing is not None and existing.cls is not cls:
            raise ValueError(f"layer type name {name!r} is already registered for {existing.cls!r}")
        entry = LayerType(name=name, cls=cls, config=config, container=container)
        _BY_NAME[name] = entry
        _BY_CLASS[cls] = entry
        return cls

    return add


def layer_type(name: str) -> LayerType:
    """The registered type called ``name``; unknown names get an error listing known ones."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise UnknownLayerError(
            f"unknown layer type {name!r}; known types: {', '.join(known_layers())}"
        ) from None


def type_name_of(block: Block) -> str | None:
    """The registered name of ``block``'s exact class (a subclass is not its parent), or None."""
    entry = _BY_CLASS.get(type(block))
    return entry.name if entry is not None else None


def config_model_of(cls: type) -> type[LayerConfig] | None:
    """The config model of ``cls`` or of its nearest registered base class (a user's subclass
    of ``Dense`` has Dense's config), or None for a block no registered class is a base of."""
    for base in cls.__mro__:
        entry = _BY_CLASS.get(base)
        if entry is not None:
            return entry.config
    return None


def known_layers() -> list[str]:
    """Registered type names, sorted."""
    return sorted(_BY_NAME)


def files_in(table: dict[str, EntryT]) -> Callable[..., Callable[[EntryT], EntryT]]:
    """A decorator for smaller tables keyed by name (autograd's VJPs, MXNet's lowerings): it
    files the function under each name given, ``@vjp("add", "subtract")`` after
    ``vjp = files_in(VJPS)``."""

    def under(*names: str) -> Callable[[EntryT], EntryT]:
        def add(entry: EntryT) -> EntryT:
            for name in names:
                table[name] = entry
            return entry

        return add

    return under
