"""The format versions in one table: what each requires of an archive.

Readers and ``verify`` ask this table (``rules(version).hashes``) instead of comparing version
numbers inline, so a new version is one entry here plus what it adds.

How to bump: "MAJOR.MINOR". Bump MINOR for additions an older reader may safely ignore (a new
optional manifest field, a new optional member); bump MAJOR for anything an older reader
would misread (a changed meaning, a new required field or member). Readers accept their own
major and older ones, and a newer minor of their major with unknown optional fields dropped.
Keep an example archive of every released version under ``spec/examples/``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FormatRules", "VERSIONS", "FORMAT_VERSION", "READER_VERSION", "CURRENT", "rules",
    "upgrade_advice",
]


@dataclass(frozen=True)
class FormatRules:
    """What archives of one format version must hold."""

    version: tuple[int, int]
    # A SHA-256 of every tensor in the manifest, and the manifest's own in the zip comment.
    hashes: bool
    note: str

    @property
    def name(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


VERSIONS: dict[tuple[int, int], FormatRules] = {
    rule.version: rule
    for rule in (
        FormatRules((1, 0), hashes=False, note="first release"),
        FormatRules((1, 1), hashes=True, note="SHA-256 per tensor, and the manifest's in the zip comment"),
        # An older reader refuses a checkpoint as an unknown kind; it never misreads one.
        FormatRules((1, 2), hashes=True, note="kind 'checkpoint': a model with its training state"),
        # An older reader drops 'ties' and then refuses the tied names' missing tensors.
        FormatRules((1, 3), hashes=True, note="'ties': a parameter shared between layers is stored once"),
        # An older reader refuses a sharded index as an unknown kind; it reads each shard.
        FormatRules((1, 4), hashes=True, note="kind 'sharded': an index of tensors held in shard archives"),
        # An older reader drops 'offset' and finds each tensor through the bundle's directory;
        # a reader of 1.5 does the same for a tensor without one (the field is optional).
        FormatRules((1, 5), hashes=True, note="'offset' per tensor: where its member starts in the bundle"),
    )
}
CURRENT = VERSIONS[max(VERSIONS)]
READER_VERSION = CURRENT.name  # the newest version this reader understands
# What writers write: every archive records its tensors' offsets (1.5); readers of 1.3 and 1.4
# ignore them (a newer minor's field) and find each tensor through the bundle's directory.
FORMAT_VERSION = "1.5"


def rules(version: tuple[int, int]) -> FormatRules:
    """The rules for ``version``; a newer minor of a known major follows the newest known
    (it may only add what older readers can ignore)."""
    if version in VERSIONS:
        return VERSIONS[version]
    same_major = [known for known in VERSIONS if known[0] == version[0] and known < version]
    if not same_major:
        raise ValueError(f"format version {version[0]}.{version[1]} has no rules in this reader")
    return VERSIONS[max(same_major)]


def upgrade_advice(found: tuple[int, int]) -> str:
    """What to add to a refusal of something this reader does not know (a layer type, an op)
    when the archive is of a newer version, whose additions may be exactly that."""
    if found <= CURRENT.version:
        return ""
    return (f"; the archive is format {found[0]}.{found[1]}, newer than this modelpack reads "
            f"({READER_VERSION}): upgrade modelpack (pip install -U modelpack)")
