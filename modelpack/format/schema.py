"""The manifest: Pydantic models of what an archive holds, written as YAML inside it.

The models are closed (``extra="forbid"``): a field this reader does not know is an error,
except that in archives of a *newer minor* format version unknown fields of the manifest and
of tensor entries are ignored (never those of layer nodes or configs: see ``spec/FORMAT.md``
§6). Layer configs are validated against the config model the registry holds
for their type name, and the committed JSON Schema is generated from these same models.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_serializer, field_validator, model_validator

from ..errors import LimitError, SchemaError, UnknownLayerError, UnknownOpError, VersionError
from ..io.gcpause import cycle_collection_paused
from ..io.limits import DEFAULT_LIMITS
from . import config_check, tensor_index
from .checkpoint_schema import (
    CHECKPOINT_PREFIXES,
    CheckpointInfo,
    DataState,
    GeneratorState,
    RandomState,
    TrainerState,
)
from .manifest_text import document_to_text, parse_yaml  # parse_yaml: part of this API too
from .models import IGNORE_UNKNOWN_FIELDS, Closed, Extensible, constructed
from .tensor_index import TensorInfo, check_tensor_name
from .versions import FORMAT_VERSION, READER_VERSION, upgrade_advice

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "MAX_NESTING_DEPTH", "TensorInfo", "LayerNode", "Manifest",
    "CheckpointInfo", "TrainerState", "RandomState", "GeneratorState", "DataState",
    "CHECKPOINT_PREFIXES", "model_weights", "model_entries", "parse_version", "check_format_version",
    "parse_yaml",
    "manifest_to_yaml", "manifest_from_yaml", "json_schema",
]

FORMAT_NAME = "modelpack"


# Deepest architecture tree accepted (a Sequential inside a Sequential ... ); documented in
# the spec, and far beyond any real network.
MAX_NESTING_DEPTH = 64

Layout = Literal["single", "list", "tuple", "dict"]
# MAJOR.MINOR, decimal, no leading zeros (spec/FORMAT.md §6); the JSON Schema says the same.
VERSION_PATTERN = r"^(0|[1-9][0-9]{0,5})\.(0|[1-9][0-9]{0,5})$"
_VERSION_RE = re.compile(VERSION_PATTERN)


def parse_version(text: str, *, source: str = "format_version") -> tuple[int, int]:
    """``"1.0"`` → ``(1, 0)``; anything else is a SchemaError naming ``source``."""
    match = _VERSION_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise SchemaError(f"{source}: format_version must look like 'MAJOR.MINOR', found {text!r}")
    return int(match.group(1)), int(match.group(2))


_READER = parse_version(READER_VERSION)


def _registry() -> ModuleType:
    """The layer registry, imported when a manifest first names a layer: importing
    ``modelpack.nn`` registers the built-in layers (~130 ms, most of a fresh process's
    time to its first tensor), which a file of tensors never needs."""
    from ..nn import registry

    return registry


class LayerNode(Closed):
    """One layer of the architecture tree: registered type, its config, and named children.

    Only containers (e.g. ``Sequential``) have children; their order is the order of calls.
    """

    type: str
    config: dict[str, Any] = Field(default_factory=dict)
    children: dict[str, LayerNode] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_against_registry(self) -> LayerNode:
        entry = _registry().layer_type(self.type)  # UnknownLayerError lists the known types
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


def model_weights(manifest: Manifest) -> dict[str, TensorInfo]:
    """The manifest's tensors that belong to the model (a checkpoint's other parts left out)."""
    return {name: info for name, info in manifest.weights.items() if not name.startswith(CHECKPOINT_PREFIXES)}


def model_entries(manifest: Manifest) -> dict[str, tensor_index.Entry]:
    """``model_weights`` as plain entries (``tensor_index.entries``): building a TensorInfo
    for each costs more than mapping its tensor."""
    entries = tensor_index.entries(manifest.weights)
    return {name: entries[name] for name in entries if not name.startswith(CHECKPOINT_PREFIXES)}


# A shard's file name: one path component, so an index can only name files beside itself.
SHARD_FILE_PATTERN = r"^[^/\\\x00-\x1f\x7f]{1,255}$"


class ShardInfo(Extensible):
    """One shard of a sharded archive: which file, how large, and what it holds (spec §12)."""

    file: str = Field(pattern=SHARD_FILE_PATTERN, description="The shard's file name, in the index's folder.")
    size: int = Field(ge=0, lt=2**63, description="The shard file's size in bytes.")
    manifest_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the shard's manifest.yaml member: the hash in the shard's zip comment.",
    )
    tensors: dict[str, TensorInfo] = Field(description="The shard's tensors, in its bundle order.")


class Manifest(Extensible):
    """Everything in an archive but the weights' bytes."""

    format: Literal["modelpack"]
    format_version: str = Field(pattern=VERSION_PATTERN)
    producer: str = Field(description="Library and version that wrote the archive.")
    kind: Literal["model", "tensors", "checkpoint", "sharded"]
    architecture: LayerNode | None = Field(
        default=None,
        description="The layer tree; present when kind is 'model', optional when 'checkpoint' or 'sharded'.",
    )
    layout: Layout | None = Field(
        default=None,
        description="Container saved with modelpack.save; present when kind is 'tensors', optional "
        "when 'sharded'.",
    )
    checkpoint: CheckpointInfo | None = Field(
        default=None, description="Training state; present exactly when kind is 'checkpoint'."
    )
    shards: list[ShardInfo] | None = Field(
        default=None, min_length=1,
        description="The shard archives holding the tensors; present exactly when kind is 'sharded'.",
    )
    weights: dict[str, TensorInfo] = Field(description="Tensors in the weight bundle, in bundle order.")
    ties: dict[str, str] | None = Field(
        default=None,
        description="Parameters shared between layers (format 1.3): each later name of a shared "
        "parameter → the name its data is stored under in 'weights'.",
    )
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("format_version")
    @classmethod
    def _version_shape(cls, value: str) -> str:
        parse_version(value)
        return value

    # The tensor index has its own home (tensor_index): checked as columns, entries built when read.
    _weights = field_validator("weights", mode="wrap")(staticmethod(tensor_index.validate_weights))
    _dump_weights = field_serializer("weights", mode="wrap")(staticmethod(tensor_index.dump_weights))

    @model_validator(mode="after")
    def _kind_matches_content(self) -> Manifest:
        _check_content(self)
        return self

    def shard_tensors(self) -> dict[str, TensorInfo]:
        """A sharded index's tensors, from every shard in order (others: ``weights``)."""
        if self.shards is None:
            return dict(self.weights)
        return {name: info for shard in self.shards for name, info in shard.tensors.items()}


def _check_content(manifest: Manifest) -> None:
    """What the fields must say together (kind, layout, shards, ties); ValueError if not."""
    if manifest.kind == "model" and (manifest.architecture is None or manifest.layout is not None):
        raise ValueError("a 'model' manifest needs 'architecture' and no 'layout'")
    if manifest.kind == "tensors" and (manifest.layout is None or manifest.architecture is not None):
        raise ValueError("a 'tensors' manifest needs 'layout' and no 'architecture'")
    if (manifest.kind == "checkpoint") != (manifest.checkpoint is not None):
        raise ValueError("a manifest has 'checkpoint' exactly when its kind is 'checkpoint'")
    if manifest.kind == "checkpoint" and manifest.layout is not None:
        raise ValueError("a 'checkpoint' manifest has no 'layout'")
    if manifest.kind == "checkpoint":
        for name in manifest.weights:
            if ":" in name and not name.startswith(CHECKPOINT_PREFIXES):
                raise ValueError(
                    f"checkpoint tensor {name!r}: a name with ':' starts with one of "
                    f"{', '.join(CHECKPOINT_PREFIXES)}"
                )
    if (manifest.kind == "sharded") != (manifest.shards is not None):
        raise ValueError("a manifest has 'shards' exactly when its kind is 'sharded'")
    if manifest.kind == "sharded":
        _check_sharded(manifest)
    if manifest.layout in ("single", "list", "tuple"):
        names = list(manifest.shard_tensors() if manifest.shards else manifest.weights)
        expected = [str(i) for i in range(len(names))]
        if names != expected or (manifest.layout == "single" and expected != ["0"]):
            raise ValueError(
                f"a '{manifest.layout}' layout names its tensors '0', '1', ... in order; found {names}"
            )
    if manifest.ties is not None:
        has_architecture = manifest.architecture is not None
        _check_ties(manifest.ties, manifest.shard_tensors(), has_architecture=has_architecture)
    if manifest.architecture is not None and _depth(manifest.architecture) > MAX_NESTING_DEPTH:
        raise ValueError(f"architecture nests deeper than {MAX_NESTING_DEPTH} levels")


def _check_sharded(manifest: Manifest) -> None:
    """An index holds a model's tree or a layout, no tensors of its own, and each tensor in
    exactly one shard, each shard in one file."""
    if (manifest.architecture is None) == (manifest.layout is None):
        raise ValueError("a 'sharded' manifest needs exactly one of 'architecture' and 'layout'")
    if manifest.checkpoint is not None or manifest.weights:
        raise ValueError("a 'sharded' manifest has no 'checkpoint' and no 'weights' of its own")
    assert manifest.shards is not None
    files: set[str] = set()
    seen: set[str] = set()
    for shard in manifest.shards:
        if shard.file in (".", ".."):
            raise ValueError(f"shard file {shard.file!r} is not a file name")
        if shard.file in files:
            raise ValueError(f"shard file {shard.file!r} is listed twice")
        files.add(shard.file)
        for name in shard.tensors:
            check_tensor_name(name)
            if name in seen:
                raise ValueError(f"tensor {name!r} is listed in two shards")
            seen.add(name)


def _check_ties(ties: dict[str, str], weights: dict[str, TensorInfo], *, has_architecture: bool) -> None:
    """Each tie goes from a name with no data to a stored tensor, in one step."""
    if not has_architecture:
        raise ValueError("'ties' belongs to a manifest with an 'architecture'")
    for alias in ties:
        check_tensor_name(alias)
        if alias in weights:
            raise ValueError(f"tie {alias!r}: a tied name has no tensor of its own, but 'weights' lists one")
    for alias, stored in ties.items():
        if stored not in weights:
            raise ValueError(f"tie {alias!r} → {stored!r}: the target must be a tensor in 'weights'")


def _depth(node: LayerNode) -> int:
    # Iterative, so a hostile depth cannot exhaust the Python stack here.
    deepest, stack = 0, [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in current.children.values())
    return deepest


# -- text (format.manifest_text writes and parses it) ------------------------------------

def _drop_empty_children(node: dict[str, Any]) -> dict[str, Any]:
    children = node.get("children")
    if not children:
        node.pop("children", None)
        return node
    for child in children.values():
        _drop_empty_children(child)
    return node


def manifest_to_yaml(manifest: Manifest) -> str:
    """The manifest as text: fields in schema order, ASCII, JSON-compatible where it can be
    (``manifest_text.document_to_text``)."""
    weights = manifest.weights
    if isinstance(weights, tensor_index.TensorIndex):
        # Its checked entries are written as they are (``document_to_text``), in the place
        # the dump keeps for the field: 10,000 tensors 52 → 12 ms.
        document = manifest.model_copy(update={"weights": {}}).model_dump(mode="json", exclude_none=True)
        document["weights"] = weights
    else:
        document = manifest.model_dump(mode="json", exclude_none=True)
    if "architecture" in document:
        _drop_empty_children(document["architecture"])
    return document_to_text(document)


def manifest_from_yaml(
    text: str, *, source: str, max_nodes: int = DEFAULT_LIMITS.max_manifest_nodes
) -> Manifest:
    """Parse and validate a manifest; every failure is a ModelpackError naming ``source``."""
    return manifest_from_dict(parse_yaml(text, source=source, max_nodes=max_nodes), source=source)


def check_format_version(document: dict[str, Any], *, source: str) -> tuple[int, int]:
    """The manifest's ``(major, minor)``, if this reader may read it; else VersionError."""
    if document.get("format") != FORMAT_NAME:
        raise SchemaError(
            f"{source}: not a modelpack manifest: expected format {FORMAT_NAME!r}, "
            f"found {document.get('format')!r}"
        )
    found = parse_version(document.get("format_version", ""), source=source)
    ours = _READER
    if found[0] != ours[0]:
        newer = found[0] > ours[0]
        raise VersionError(
            f"{source}: written in format version {found[0]}.{found[1]}, but this reader "
            f"understands major version {ours[0]} (up to {READER_VERSION})"
            + ("; upgrade modelpack" if newer else "; no released format has that major version")
        )
    return found


def manifest_from_dict(
    document: dict[str, Any],
    *,
    source: str,
    max_architecture_nodes: int = DEFAULT_LIMITS.max_architecture_nodes,
    version: tuple[int, int] | None = None,
) -> Manifest:
    """Validate a parsed manifest, applying the version rules and the architecture's size
    limit before the schema (validating a layer or graph node costs ~100 plain nodes).
    ``version``: what ``check_format_version`` returned for this document, where the caller
    checked it first (a reader opening an archive); else it is checked here."""
    found = check_format_version(document, source=source) if version is None else version
    count = count_architecture_nodes(document.get("architecture"))
    if count > max_architecture_nodes:
        raise LimitError(
            source, "the architecture's layers and graph nodes", count,
            limit="max_architecture_nodes", allowed=max_architecture_nodes,
        )
    # A newer minor version may only add optional fields: ignore the manifest and tensor
    # fields we don't know (layer nodes and configs stay closed; see models.Extensible).
    newer_minor = found[1] > _READER[1]
    quick = None if newer_minor else _quick_manifest(document)
    if quick is not None:
        return quick
    try:
        with cycle_collection_paused():  # a model object per tensor and layer
            return Manifest.model_validate(document, context={IGNORE_UNKNOWN_FIELDS: newer_minor})
    except (UnknownLayerError, UnknownOpError) as exc:  # registry lookups, not wrapped by pydantic
        # in a newer minor version, an unknown layer type or op is likely what it added
        raise type(exc)(f"{source}: {exc}{upgrade_advice(found)}") from None
    except ValidationError as exc:
        raise SchemaError(f"{source}: invalid manifest: {describe_errors(exc)}") from None
    except RecursionError:
        raise SchemaError(f"{source}: architecture nests too deeply") from None


# The fields a tensor archive's and a model archive's manifest may hold; ``_quick_manifest``
# checks them.
_QUICK_FIELDS = {
    "tensors": frozenset(("format", "format_version", "producer", "kind", "layout", "weights", "metadata")),
    "model": frozenset(("format", "format_version", "producer", "kind", "architecture", "weights", "ties",
                        "metadata")),
}
_LAYOUTS = frozenset(get_args(Layout))
_STR = frozenset((str,))


def _quick_manifest(document: dict[str, Any]) -> Manifest | None:
    """A tensor or model archive's manifest, the common cases, checked without Pydantic's
    machinery (two thirds of a tensor manifest's validation; a third of a small model's, see
    ``config_check``) when every field is plainly what the schema accepts; None for anything
    else, which the schema then validates and words.

    The checks are the schema's: ``check_format_version`` has read the format and version
    (their types are checked here), the index is ``tensor_index.checked_index``'s, the layer
    tree ``_quick_node``'s, and the model's own ``_kind_matches_content`` runs on the result,
    which is what ``model_validate`` gives.
    """
    kind = document.get("kind")
    fields = _QUICK_FIELDS.get(kind) if type(kind) is str else None
    if fields is None or not document.keys() <= fields:
        return None
    metadata = document.get("metadata", {})
    if (
        type(document.get("producer")) is not str
        or type(document.get("format")) is not str or type(document.get("format_version")) is not str
        or type(metadata) is not dict
        or (metadata and not set(map(type, itertools.chain(metadata, metadata.values()))) <= _STR)
    ):
        return None
    quick = dict(document)
    if kind == "tensors":
        layout = document.get("layout")
        if type(layout) is not str or layout not in _LAYOUTS:
            return None
    else:
        ties = document.get("ties")
        if ties is not None and (type(ties) is not dict or (
                ties and not set(map(type, itertools.chain(ties, ties.values()))) <= _STR)):
            return None
        quick["architecture"] = _quick_node(document.get("architecture"), 1)
        if quick["architecture"] is None:
            return None
    weights = quick["weights"] = tensor_index.checked_index(document.get("weights"))
    if weights is None:
        return None
    values = {name: quick[name] if name in quick else factory() if factory else default
              for name, (factory, default) in _DEFAULTS.items()}
    manifest = constructed(Manifest, values, set(document))
    try:
        _check_content(manifest)
    except ValueError:
        return None
    return manifest


# Each Manifest field's default factory or default, in field order (a factory is called for
# each manifest, as Pydantic calls it).
_DEFAULTS: dict[str, tuple[Callable[[], Any] | None, Any]] = {
    name: (field.default_factory, field.default) for name, field in Manifest.model_fields.items()  # type: ignore[misc]
}
_NODE_FIELDS = frozenset(("type", "config", "children"))


def _quick_node(value: Any, depth: int) -> LayerNode | None:
    """The ``LayerNode`` Pydantic would give for a plain tree (a registered type; a config
    ``config_check`` accepts for it; children only on containers, named without '.'); None
    for anything else, or a tree deeper than ``MAX_NESTING_DEPTH``."""
    if type(value) is not dict or not value.keys() <= _NODE_FIELDS or depth > MAX_NESTING_DEPTH:
        return None
    name, children = value.get("type"), value.get("children", {})
    if type(name) is not str or type(children) is not dict:
        return None
    try:
        entry = _registry().layer_type(name)
    except UnknownLayerError:
        return None
    if children and not entry.container:
        return None
    config = config_check.checked_config(entry.config, value.get("config", {}))
    if config is None:
        return None
    nodes = {}
    for child_name, child in children.items():
        if type(child_name) is not str or not child_name or "." in child_name:
            return None
        node = _quick_node(child, depth + 1)
        if node is None:
            return None
        nodes[child_name] = node
    # (validation sets ``config`` again, which puts it in the fields set)
    return constructed(LayerNode, {"type": name, "config": config, "children": nodes}, {*value, "config"})


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
    schema = Manifest.model_json_schema(mode="validation")
    # Validation dispatches on the type name (the registry is open at run time); the schema
    # spells that dispatch out as one variant per registered type with its config schema.
    variants, registry = [], _registry()
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
    schema["$id"] = f"https://modelpack.dev/schema/manifest-{READER_VERSION}.json"
    return schema
