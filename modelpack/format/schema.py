"""The manifest: Pydantic models of what an archive holds, written as YAML inside it.

The models are closed (``extra="forbid"``): a field this reader does not know is an error,
except that in archives of a *newer minor* format version unknown fields of the manifest and
of tensor entries are ignored (never those of layer nodes or configs: see ``spec/FORMAT.md``
§6). Layer configs are validated against the config model the registry holds
for their type name, and the committed JSON Schema is generated from these same models.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from ..errors import LimitError, SchemaError, UnknownLayerError, UnknownOpError, VersionError
from ..io import safeyaml
from ..io.limits import DEFAULT_LIMITS
from ..io.npy import SUPPORTED_DTYPES
from ..nn import registry
from . import tensor_index
from .checkpoint_schema import (
    CHECKPOINT_PREFIXES,
    CheckpointInfo,
    DataState,
    GeneratorState,
    RandomState,
    TrainerState,
)
from .versions import FORMAT_VERSION

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_NESTING_DEPTH",
    "TensorInfo",
    "LayerNode",
    "Manifest",
    "CheckpointInfo",
    "TrainerState",
    "RandomState",
    "GeneratorState",
    "DataState",
    "CHECKPOINT_PREFIXES",
    "model_weights",
    "parse_version",
    "check_format_version",
    "parse_yaml",
    "manifest_to_yaml",
    "manifest_from_yaml",
    "json_schema",
]

FORMAT_NAME = "modelpack"


# Deepest architecture tree accepted (a Sequential inside a Sequential ... ); documented in
# the spec, and far beyond any real network.
MAX_NESTING_DEPTH = 64

DtypeName = Literal[SUPPORTED_DTYPES]  # type: ignore[valid-type]
Layout = Literal["single", "list", "tuple", "dict"]
# MAJOR.MINOR, decimal, no leading zeros (spec/FORMAT.md §6); the JSON Schema says the same.
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$"
_VERSION_RE = re.compile(VERSION_PATTERN)
# Weight names: dotted identifiers for models; any printable name without path characters
# for tensor dicts. Either way a name can never form a path outside the bundle.
_FORBIDDEN_NAME_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def parse_version(text: str, *, source: str = "format_version") -> tuple[int, int]:
    """``"1.0"`` → ``(1, 0)``; anything else is a SchemaError naming ``source``."""
    match = _VERSION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise SchemaError(f"{source}: format_version must look like 'MAJOR.MINOR', found {text!r}")
    return int(match.group(1)), int(match.group(2))


class _Closed(BaseModel):
    # ser_json_inf_nan: a non-finite float in a dict[str, Any] (a layer config, a graph
    # scalar) stays a float when dumped; pydantic's default turns it into None (null).
    model_config = ConfigDict(extra="forbid", strict=True, ser_json_inf_nan="constants")


# Validation context key: set when the archive is of a newer minor version than this reader.
IGNORE_UNKNOWN_FIELDS = "ignore_unknown_fields"


class _Extensible(_Closed):
    """Closed, except that a newer minor version's additions are dropped (they are optional)."""

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_fields(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict) and info.context and info.context.get(IGNORE_UNKNOWN_FIELDS):
            return {key: value for key, value in data.items() if key in cls.model_fields}
        return data


class TensorInfo(_Extensible):
    """One tensor of the weight bundle: numpy dtype name and shape (little-endian, C order)."""

    dtype: DtypeName
    shape: list[Annotated[int, Field(ge=0, lt=2**63)]]
    sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (lowercase hex) of the tensor's data bytes as stored: C order, "
        "little-endian, without the .npy header. Written from format 1.1 on.",
    )


class LayerNode(_Closed):
    """One layer of the architecture tree: registered type, its config, and named children.

    Only containers (e.g. ``Sequential``) have children; their order is the order of calls.
    """

    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    children: dict[str, LayerNode] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_against_registry(self) -> LayerNode:
        entry = registry.layer_type(self.type)  # UnknownLayerError lists the known types
        try:
            validated = entry.config.model_validate(self.config)
        except ValidationError as exc:
            raise ValueError(
                f"invalid config for layer type {self.type!r}: {describe_errors(exc, 'config')}"
            ) from None
        self.config = validated.model_dump(mode="json")
        if self.children and not entry.container:
            raise ValueError(f"layer type {self.type!r} cannot have children")
        for name in self.children:
            # A '.' would make structured parameter names ambiguous (spec/FORMAT.md §3).
            if not name or "." in name:
                raise ValueError(f"child name {name!r} is empty or holds '.'")
        return self


def _tensor_info(dtype: str, shape: list[int], sha256: str | None = None) -> TensorInfo:
    """A TensorInfo from values already checked (tensor_index): ``model_construct``'s result,
    at a fifth of its cost."""
    info = TensorInfo.__new__(TensorInfo)
    object.__setattr__(info, "__dict__", {"dtype": dtype, "shape": shape, "sha256": sha256})
    fields = {"dtype", "shape", "sha256"} if sha256 else {"dtype", "shape"}
    object.__setattr__(info, "__pydantic_fields_set__", fields)
    object.__setattr__(info, "__pydantic_extra__", None)
    object.__setattr__(info, "__pydantic_private__", None)
    return info


def model_weights(manifest: Manifest) -> dict[str, TensorInfo]:
    """The manifest's tensors that belong to the model (a checkpoint's other parts left out)."""
    return {name: info for name, info in manifest.weights.items() if not name.startswith(CHECKPOINT_PREFIXES)}


class Manifest(_Extensible):
    """Everything in an archive but the weights' bytes."""

    format: Literal["modelpack"]
    format_version: str = Field(pattern=VERSION_PATTERN)
    producer: str = Field(description="Library and version that wrote the archive.")
    kind: Literal["model", "tensors", "checkpoint"]
    architecture: LayerNode | None = Field(
        default=None,
        description="The layer tree; present when kind is 'model', optional when 'checkpoint'.",
    )
    layout: Layout | None = Field(
        default=None,
        description="Container saved with modelpack.save; present exactly when kind is 'tensors'.",
    )
    checkpoint: CheckpointInfo | None = Field(
        default=None, description="Training state; present exactly when kind is 'checkpoint'."
    )
    weights: dict[str, TensorInfo] = Field(description="Tensors in the weight bundle, in bundle order.")
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("format_version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        parse_version(value)
        return value

    @field_validator("weights", mode="wrap")
    @classmethod
    def _weights(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Mapping[str, TensorInfo]:
        # The common case is checked as columns, entries built when read (tensor_index);
        # anything else entry by entry here, which words the refusal.
        index = tensor_index.vouch(value, _tensor_info)
        if index is not None:
            return index
        checked: dict[str, TensorInfo] = handler(value)
        for name in checked:
            check_tensor_name(name)
        return checked

    @field_serializer("weights", mode="wrap")
    def _dump_weights(self, value: Mapping[str, TensorInfo], handler: SerializerFunctionWrapHandler) -> Any:
        return handler(dict(value.items()) if isinstance(value, tensor_index.TensorIndex) else value)

    @model_validator(mode="after")
    def _kind_matches_content(self) -> Manifest:
        if self.kind == "model" and (self.architecture is None or self.layout is not None):
            raise ValueError("a 'model' manifest needs 'architecture' and no 'layout'")
        if self.kind == "tensors" and (self.layout is None or self.architecture is not None):
            raise ValueError("a 'tensors' manifest needs 'layout' and no 'architecture'")
        if (self.kind == "checkpoint") != (self.checkpoint is not None):
            raise ValueError("a manifest has 'checkpoint' exactly when its kind is 'checkpoint'")
        if self.kind == "checkpoint" and self.layout is not None:
            raise ValueError("a 'checkpoint' manifest has no 'layout'")
        if self.kind == "checkpoint":
            for name in self.weights:
                if ":" in name and not name.startswith(CHECKPOINT_PREFIXES):
                    raise ValueError(
                        f"checkpoint tensor {name!r}: a name with ':' starts with one of "
                        f"{', '.join(CHECKPOINT_PREFIXES)}"
                    )
        if self.layout in ("single", "list", "tuple"):
            expected = [str(i) for i in range(len(self.weights))]
            if list(self.weights) != expected or (self.layout == "single" and expected != ["0"]):
                raise ValueError(
                    f"a '{self.layout}' layout names its tensors '0', '1', ... in order; "
                    f"found {list(self.weights)}"
                )
        if self.architecture is not None and _depth(self.architecture) > MAX_NESTING_DEPTH:
            raise ValueError(f"architecture nests deeper than {MAX_NESTING_DEPTH} levels")
        return self


def check_tensor_name(name: str) -> None:
    """Refuse names that are empty or could act as paths inside the bundle."""
    if not name or _FORBIDDEN_NAME_CHARS.search(name) or len(name) > 1024:
        raise ValueError(
            f"tensor name {name!r} is not allowed: names are 1-1024 characters with no '/', "
            "'\\' or control characters"
        )


def _depth(node: LayerNode) -> int:
    # Iterative, so a hostile depth cannot exhaust the Python stack here.
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children.values())
    return deepest


# -- YAML ---------------------------------------------------------------------------------

class _ManifestDumper(yaml.SafeDumper):
    """Block style, except short lists of scalars (shapes, kernel sizes) stay on one line."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(item, (list, dict)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_ManifestDumper.add_representer(list, _represent_list)


def _drop_empty_children(node: dict[str, Any]) -> dict[str, Any]:
    children = node.get("children")
    if not children:
        node.pop("children", None)
        return node
    for child in children.values():
        _drop_empty_children(child)
    return node


def manifest_to_yaml(manifest: Manifest) -> str:
    """The manifest as YAML text: fields in schema order, ASCII.

    Written in the JSON subset of YAML (indented, one field per line) whenever the content
    allows — every JSON parser reads it, and it parses ~20× faster than block YAML — else
    (non-finite floats, characters beyond the BMP) in block style.
    """
    document = manifest.model_dump(mode="json", exclude_none=True)
    if "architecture" in document:
        _drop_empty_children(document["architecture"])
    as_json = _json_text(document, "")
    if as_json is not None:
        return as_json + "\n"
    return yaml.dump(
        document,
        Dumper=_ManifestDumper,
        sort_keys=False,
        # ASCII with escapes: PyYAML writes some characters (NEL, U+2028) raw that its own
        # reader then takes as line breaks; escaped text round-trips exactly.
        allow_unicode=False,
        default_flow_style=False,
        width=100,
    )


def _json_text(value: Any, indent: str) -> str | None:
    """JSON that YAML 1.1 reads identically (floats with a point and a signed exponent), or
    None when the value has something JSON cannot say that way."""
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = indent + "  "
        parts = []
        for key, item in value.items():
            text = _json_text(item, inner)
            if text is None or _json_text(key, inner) is None:
                return None
            parts.append(f"{inner}{json.dumps(key)}: {text}")
        return "{\n" + ",\n".join(parts) + "\n" + indent + "}"
    if isinstance(value, list):
        items = [_json_text(item, indent + "  ") for item in value]
        if any(item is None for item in items):
            return None
        if all(not isinstance(item, (dict, list)) for item in value):
            return "[" + ", ".join(items) + "]"  # type: ignore[arg-type]
        inner = indent + "  "
        return "[\n" + ",\n".join(inner + item for item in items) + "\n" + indent + "]"  # type: ignore[operator]
    if isinstance(value, str):
        return json.dumps(value) if value.isascii() or max(value) <= "\uffff" else None
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = repr(value)
        mantissa, _, exponent = text.partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return mantissa + ("e" + exponent if exponent else "")
    return None


def manifest_from_yaml(
    text: str, *, source: str, max_nodes: int = DEFAULT_LIMITS.max_manifest_nodes
) -> Manifest:
    """Parse and validate a manifest; every failure is a ModelpackError naming ``source``."""
    return manifest_from_dict(parse_yaml(text, source=source, max_nodes=max_nodes), source=source)


def parse_yaml(
    text: str, *, source: str, max_nodes: int = DEFAULT_LIMITS.max_manifest_nodes
) -> dict[str, Any]:
    """The manifest's YAML as plain data (see ``safeyaml``: no tags, aliases, or deep nesting)."""
    try:
        document = safeyaml.load(text, max_nodes=max_nodes)
    except safeyaml.YAMLTooLarge as exc:
        costlier = f" (in the block form, each node counts {exc.cost} times)"
        raise LimitError(
            f"{source}: manifest", "its YAML node count", max_nodes + 1,
            limit="max_manifest_nodes", allowed=max_nodes, note=costlier if exc.cost > 1 else "",
        ) from None
    except safeyaml.YAMLRefused as exc:
        raise SchemaError(f"{source}: manifest is not valid safe YAML: {exc}") from None
    if not isinstance(document, dict):
        raise SchemaError(f"{source}: manifest must be a mapping, found {type(document).__name__}")
    return document


def check_format_version(document: dict[str, Any], *, source: str) -> tuple[int, int]:
    """The manifest's ``(major, minor)``, if this reader may read it; else VersionError."""
    if document.get("format") != FORMAT_NAME:
        raise SchemaError(
            f"{source}: not a modelpack manifest: expected format {FORMAT_NAME!r}, "
            f"found {document.get('format')!r}"
        )
    found = parse_version(document.get("format_version", ""), source=source)
    ours = parse_version(FORMAT_VERSION)
    if found[0] != ours[0]:
        newer = found[0] > ours[0]
        raise VersionError(
            f"{source}: written in format version {found[0]}.{found[1]}, but this reader "
            f"understands major version {ours[0]} (up to {FORMAT_VERSION})"
            + ("; upgrade modelpack" if newer else "; no released format has that major version")
        )
    return found


def manifest_from_dict(
    document: dict[str, Any],
    *,
    source: str,
    max_architecture_nodes: int = DEFAULT_LIMITS.max_architecture_nodes,
) -> Manifest:
    """Validate a parsed manifest, applying the version rules and the architecture's size
    limit before the schema (validating a layer or graph node costs ~100 plain nodes)."""
    found = check_format_version(document, source=source)
    count = count_architecture_nodes(document.get("architecture"))
    if count > max_architecture_nodes:
        raise LimitError(
            source, "the architecture's layers and graph nodes", count,
            limit="max_architecture_nodes", allowed=max_architecture_nodes,
        )
    # A newer minor version may only add optional fields: ignore the manifest and tensor
    # fields we don't know (layer nodes and configs stay closed; see _Extensible).
    newer_minor = found[1] > parse_version(FORMAT_VERSION)[1]
    try:
        with safeyaml.gc_paused():  # a model object per tensor and layer: see gc_paused
            return Manifest.model_validate(document, context={IGNORE_UNKNOWN_FIELDS: newer_minor})
    except (UnknownLayerError, UnknownOpError) as exc:  # registry lookups, not wrapped by pydantic
        raise type(exc)(f"{source}: {exc}") from None
    except ValidationError as exc:
        raise SchemaError(f"{source}: invalid manifest: {describe_errors(exc)}") from None
    except RecursionError:
        raise SchemaError(f"{source}: architecture nests too deeply") from None


def count_architecture_nodes(tree: Any) -> int:
    """Layers plus graph nodes of a parsed (not yet validated) architecture; whatever is not
    shaped like one is left for the schema to refuse. Iterative: depth cannot hurt here."""
    count, stack = 0, [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        count += 1
        config, children = node.get("config"), node.get("children")
        graph = config.get("graph") if isinstance(config, dict) else None
        if isinstance(graph, dict) and isinstance(graph.get("nodes"), list):
            count += len(graph["nodes"])
        if isinstance(children, dict):
            stack.extend(children.values())
    return count


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    """Pydantic's errors on one line each: ``where: what (found: value)``, joined by '; '."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        found = repr(error.get("input"))
        found = found if len(found) <= 60 else found[:57] + "..."
        shown = f" (found: {found})" if error["type"] != "value_error" else ""
        parts.append(f"{where or '<manifest>'}: {message}{shown}")
    return "; ".join(parts)


def json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the manifest, generated from the models above."""
    from .. import nn  # noqa: F401  (registers the built-in layer types)

    schema = Manifest.model_json_schema(mode="validation")
    # Validation dispatches on the type name (the registry is open at run time); the schema
    # spells that dispatch out as one variant per registered type with its config schema.
    variants = []
    for name in registry.known_layers():
        entry = registry.layer_type(name)
        config_schema = entry.config.model_json_schema(mode="validation")
        config_schema.pop("description", None)
        # A config's own definitions (GraphConfig's GraphSpec, ...) go to the root, where
        # its "#/$defs/..." references resolve.
        for key, definition in config_schema.pop("$defs", {}).items():
            if schema["$defs"].setdefault(key, definition) != definition:
                raise ValueError(f"two different JSON Schema definitions are called {key!r}")
        schema["$defs"][f"{name}Config"] = config_schema
        properties: dict[str, Any] = {
            "type": {"const": name},
            "config": {"$ref": f"#/$defs/{name}Config"},
        }
        if entry.container:
            properties["children"] = {
                "type": "object",
                "additionalProperties": {"$ref": "#/$defs/LayerNode"},
            }
        variants.append({
            "type": "object",
            "properties": properties,
            "required": ["type"],
            "additionalProperties": False,
        })
    schema["$defs"]["LayerNode"] = {
        "title": "LayerNode",
        "description": LayerNode.__doc__.strip() if LayerNode.__doc__ else "",
        "oneOf": variants,
    }
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://modelpack.dev/schema/manifest-{FORMAT_VERSION}.json"
    return schema
