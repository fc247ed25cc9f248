"""The manifest models' two Pydantic bases: closed, and closed but for a newer version's fields.

Every manifest model is closed (``extra="forbid"``): a field this reader does not know is an
error. Entries that a newer *minor* format version may extend (the manifest's top level, a
tensor entry, a shard) drop unknown fields instead when validated with the context key
``IGNORE_UNKNOWN_FIELDS`` set (``spec/FORMAT.md`` §6); layer nodes and configs never do.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

__all__ = ["Closed", "Extensible", "IGNORE_UNKNOWN_FIELDS", "constructed"]

Model = TypeVar("Model", bound=BaseModel)

# Validation context key: set when the archive is of a newer minor version than this reader.
IGNORE_UNKNOWN_FIELDS = "ignore_unknown_fields"


class Closed(BaseModel):
    # ser_json_inf_nan: a non-finite float in a dict[str, Any] (a layer config, a graph
    # scalar) stays a float when dumped; pydantic's default turns it into None (null).
    # defer_build: a validator is built at the first validation, not at import; a plain
    # manifest is checked without one (``schema._quick_manifest``), which spares a script that
    # only reads ~40 ms of its start (Pydantic's plugin scan among them). Threads that are first
    # at once need pydantic 2.11.5 (pyproject.toml says why).
    model_config = ConfigDict(extra="forbid", strict=True, ser_json_inf_nan="constants", defer_build=True)


class Extensible(Closed):
    """Closed, except that a newer minor version's additions are dropped (they are optional)."""

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get(IGNORE_UNKNOWN_FIELDS):
            return {key: value for key, value in data.items() if key in cls.model_fields}
        return data


def constructed(model: type[Model], values: dict[str, Any], fields_set: set[str]) -> Model:
    """The object ``model_validate`` gives, from ``values`` already checked (every field,
    defaults included; ``fields_set`` those the document gave): ``model_construct``'s result
    at a third of its cost, for the tensor index's entries and a tensor archive's manifest."""
    instance = model.__new__(model)
    object.__setattr__(instance, "__dict__", values)
    object.__setattr__(instance, "__pydantic_fields_set__", fields_set)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    return instance
