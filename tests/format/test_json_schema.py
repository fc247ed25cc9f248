"""The committed JSON Schema (schema/manifest.schema.json) in a strict standard validator:
it is a valid draft 2020-12 schema whose every reference resolves inside the file (no
retrieval), it accepts every manifest of spec/examples and of the valid conformance vectors,
and it refuses what FORMAT.md §2.2 and §6 require."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema" / "manifest.schema.json").read_text(encoding="utf-8"))
INDEX = json.loads((ROOT / "spec" / "conformance" / "index.json").read_text(encoding="utf-8"))
# The schema describes this version's manifests; a newer minor version may add fields (§6).
ARCHIVES = sorted((ROOT / "spec" / "examples").glob("*.mpk")) + [
    ROOT / "spec" / "conformance" / v["archive"] for v in INDEX["valid"] if v["format_version"] in ("1.0", "1.1")
]


def _no_retrieval(uri: str) -> referencing.Resource:
    raise referencing.exceptions.NoSuchResource(uri)


def _validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    registry: referencing.Registry = referencing.Registry(retrieve=_no_retrieval)  # type: ignore[call-arg]
    return jsonschema.Draft202012Validator(SCHEMA, registry=registry)


def _manifest(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        text = archive.read("manifest.yaml").decode("utf-8")
    # Trusted test data: JSON for the JSON form, PyYAML's safe loader for the block form.
    return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)


@pytest.mark.parametrize("path", ARCHIVES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_valid_manifest_validates(path: Path) -> None:
    _validator().validate(_manifest(path))


def test_the_schema_refuses_what_the_spec_requires() -> None:
    validator = _validator()
    good = _manifest(ROOT / "spec" / "examples" / "mlp-1.1.mpk")
    validator.validate(good)
    for field in ("format", "format_version", "producer", "kind", "weights"):
        broken = {k: v for k, v in good.items() if k != field}
        assert not validator.is_valid(broken), f"a manifest without {field} validates"
    for version in ("01.1", "1.01", "1", "1.1.0", "1234567.0"):
        assert not validator.is_valid({**good, "format_version": version}), version
