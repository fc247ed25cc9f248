"""Layer configs checked without Pydantic's machinery, by checks built from the config models'
own core schemas (``LayerNode``'s fast path, ``schema._quick_node``).

Validating a config (``model_validate`` then ``model_dump(mode="json")``, as ``LayerNode``
does) costs ~30 µs for a ``Dense`` layer right after a collection (as the benchmark times an
open), the check here ~15 µs; a whole model manifest's check, median of alternating runs,
193 → 125 µs for 3 ``Dense`` layers, 292 → 215 µs for 25. The core schema Pydantic builds
from a config model says everything it checks; for the plain kinds (strict ints, floats,
bools, strings, string literals, nullables, defaults and lists of those; an "after" model
validator, which runs on the result as Pydantic runs it) this module builds the same check
as a few Python closures. Anything else in a schema (another validator, an alias, a custom
serializer, a pattern, a union …) leaves that model without a check (``checker`` gives
None), and anything a check does not plainly accept makes it decline: either way Pydantic
validates the config and words any refusal. Nothing is accepted here that the model refuses
(tests/format/test_config_check.py compares them).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from .models import constructed

__all__ = ["Check", "checker", "checked_config"]

Check = Callable[[dict[str, Any]], dict[str, Any]]  # a config → its dump; raises Declined


class Declined(Exception):
    """A value a check does not plainly accept: Pydantic validates it instead."""


class _Unsupported(Exception):
    """A schema holding something this module does not check."""




def checked_config(model: type[BaseModel], config: Any) -> dict[str, Any] | None:
    """``model.model_validate(config).model_dump(mode="json")`` where the built check plainly
    accepts ``config``; None where it declines or ``model`` has no check."""
    check = checker(model)
    if check is None or type(config) is not dict:
        return None
    try:
        return check(config)
    except Declined:
        return None


@functools.cache
def checker(model: type[BaseModel]) -> Check | None:
    """The check of ``model``'s configs built from its core schema, or None where the schema
    holds something this module does not check. (Built once per model; the registry's models
    are never redefined under a name.)"""
    try:
        return _model(dict(model.__pydantic_core_schema__))  # (a deferred model's schema is built here)
    except _Unsupported:
        return None


def _keys(schema: dict[str, Any], allowed: frozenset[str]) -> None:
    if not schema.keys() <= allowed:
        raise _Unsupported(sorted(schema.keys() - allowed))


_MODEL_KEYS = frozenset(("type", "cls", "config", "custom_init", "metadata", "ref", "root_model", "schema"))
_FIELDS_KEYS = frozenset(("type", "computed_fields", "fields", "model_name"))
_FIELD_KEYS = frozenset(("type", "schema", "metadata"))
_BOUNDS = frozenset(("ge", "gt", "le", "lt"))
# The model settings a check matches (a config model's, ``registry.LayerConfig``): strict,
# closed, and non-finite floats dumped as floats.
_CONFIG = {"extra_fields_behavior": "forbid", "strict": True, "ser_json_inf_nan": "constants"}


def _model(schema: dict[str, Any]) -> Check:
    """A model's check: its fields in order, then an "after" model validator if it has one."""
    after = None
    if schema["type"] == "function-after":
        _keys(schema, frozenset(("type", "function", "schema", "metadata", "ref")))
        if schema["function"]["type"] != "no-info":
            raise _Unsupported("a validator taking info")
        after, schema = schema["function"]["function"], schema["schema"]
    if schema["type"] != "model":
        raise _Unsupported(schema["type"])
    _keys(schema, _MODEL_KEYS)
    config = schema.get("config", {})
    if (config != {**config, **_CONFIG} or not config.keys() <= _CONFIG.keys() | {"title"}
            or schema.get("custom_init") or schema.get("root_model")):
        raise _Unsupported("a model that is not strict and closed, or has its own __init__")
    fields = schema["schema"]
    _keys(fields, _FIELDS_KEYS)
    if fields["type"] != "model-fields" or fields.get("computed_fields"):
        raise _Unsupported("computed fields")
    plan = []
    for name, field in fields["fields"].items():
        _keys(field, _FIELD_KEYS)
        plan.append((name, *_field(field["schema"])))
    names = frozenset(name for name, *_ in plan)
    cls = schema["cls"]

    def check(value: dict[str, Any]) -> dict[str, Any]:
        if not value.keys() <= names:
            raise Declined
        dumped = {}
        for name, required, default, inner in plan:
            if name in value:
                dumped[name] = inner(value[name])
            elif required:
                raise Declined
            else:
                dumped[name] = default()
        if after is not None:
            instance = constructed(cls, dumped, set(value))
            try:
                if after(instance) is not instance:
                    raise Declined
            except Exception:  # (the validator's own refusal: Pydantic words it)
                raise Declined from None
        return dumped

    return check


def _field(schema: dict[str, Any]) -> tuple[bool, Callable[[], Any], Callable[[Any], Any]]:
    """(required, the default's dump (a fresh one each time), the value's check)."""
    if schema["type"] != "default":
        return True, _no_default, _value(schema)
    _keys(schema, frozenset(("type", "schema", "default", "default_factory", "default_factory_takes_data")))
    inner = _value(schema["schema"])
    if "default_factory" in schema:
        if schema.get("default_factory_takes_data"):
            raise _Unsupported("a default computed from the other fields")
        factory = schema["default_factory"]
    else:
        factory = functools.partial(_copy, schema["default"])
    default = factory()
    try:
        if not _same(inner(default), default):
            raise _Unsupported("a default the field's own check changes")
    except Declined:
        raise _Unsupported("a default the field's own check refuses") from None
    # (Pydantic dumps the default it does not check; here it is one the check returns as is)
    return False, lambda: inner(factory()), inner


def _copy(value: Any) -> Any:
    return list(value) if type(value) is list else value


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same type, all the way down."""
    if type(a) is not type(b):
        return False
    if type(a) is list:
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _no_default() -> Any:
    raise AssertionError("a required field has no default")  # (never called)


def _value(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """The check of one value: returns it as ``model_dump(mode="json")`` writes it."""
    kind = schema["type"]
    if kind == "int":
        _keys(schema, _BOUNDS | {"type", "metadata"})
        return _bounded(int, schema)
    if kind == "float":
        _keys(schema, _BOUNDS | {"type", "metadata", "allow_inf_nan"})
        return _float(schema)
    if kind == "bool":
        _keys(schema, frozenset(("type", "metadata")))
        return _exact(bool)
    if kind == "str":
        _keys(schema, frozenset(("type", "metadata", "min_length", "max_length")))
        return _string(schema.get("min_length", 0), schema.get("max_length"))
    if kind == "literal":
        _keys(schema, frozenset(("type", "expected", "metadata")))
        expected = schema["expected"]
        if not all(type(item) is str for item in expected):
            raise _Unsupported("a literal other than strings")  # (Pydantic's 1 == True == 1.0)
        return _member(frozenset(expected))
    if kind == "nullable":
        _keys(schema, frozenset(("type", "schema", "metadata")))
        return _nullable(_value(schema["schema"]))
    if kind == "list":
        _keys(schema, frozenset(("type", "items_schema", "min_length", "max_length", "metadata")))
        return _list(_value(schema["items_schema"]), schema.get("min_length", 0), schema.get("max_length"))
    raise _Unsupported(kind)


def _exact(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise Declined
        return value

    return check


def _bounded(kind: type, schema: dict[str, Any]) -> Callable[[Any], Any]:
    """An int within the schema's bounds (strict: a bool is not one)."""
    ge, gt, le, lt = (schema.get(bound) for bound in ("ge", "gt", "le", "lt"))

    def check(value: Any) -> Any:
        if type(value) is not kind or (
            (ge is not None and not value >= ge) or (gt is not None and not value > gt)
            or (le is not None and not value <= le) or (lt is not None and not value < lt)
        ):
            raise Declined
        return value

    return check


def _float(schema: dict[str, Any]) -> Callable[[Any], Any]:
    """A float, or an int (strict floats take them, as floats: rounded to nearest as
    ``float()`` rounds, which is how Pydantic converts them too), within bounds."""
    within = _bounded(float, schema)
    finite_only = schema.get("allow_inf_nan") is False

    def check(value: Any) -> Any:
        if type(value) is int:
            try:
                value = float(value)
            except OverflowError:
                raise Declined from None
        if finite_only and type(value) is float and not math.isfinite(value):
            raise Declined
        return within(value)

    return check


def _string(shortest: int, longest: int | None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not str or len(value) < shortest or (longest is not None and len(value) > longest):
            raise Declined
        return value

    return check


def _member(expected: frozenset[str]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not str or value not in expected:
            raise Declined
        return value

    return check


def _nullable(inner: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def _list(item: Callable[[Any], Any], shortest: int, longest: int | None) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not list or len(value) < shortest or (longest is not None and len(value) > longest):
            raise Declined
        return [item(element) for element in value]

    return check
