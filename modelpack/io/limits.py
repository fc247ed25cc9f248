"""Resource limits a reader enforces before it allocates or parses anything an archive declares.

An archive comes from a stranger, so every size it declares is checked against a limit
first: a forged header then costs a few bytes of reading, never gigabytes of memory. The
defaults admit any archive modelpack itself would write for a model that fits in a large
machine's memory; a user who trusts a bigger file passes ``limits=Limits(...)``:

>>> modelpack.load("huge.mpk", limits=modelpack.Limits(max_total_bytes=256 * 2**30))  # doctest: +SKIP

Limits that protect the parser itself and that no legitimate archive comes near (YAML nesting,
architecture depth, tensor name length, dimensions per tensor) are fixed and documented in
``spec/FORMAT.md`` §8 instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["Limits", "DEFAULT_LIMITS", "GRACE_BYTES", "ACTIVATION_FLOOR"]

MiB = 1 << 20
GiB = 1 << 30

# A deflated member may always expand to this many bytes, whatever its ratio: small members
# (a zero bias, a short manifest) legitimately compress far better than weights do.
GRACE_BYTES = 1 * MiB

# The activation budget of a loaded model when max_activation_bytes is None: a floor every
# small model on a small input stays far below, and terms that grow with what legitimately
# makes activations large — the model (its file: what an attacker pays for) and the input
# (what the caller chose). A ResNet-18-shaped CNN at 224x224 holds at most 24 times its input
# at once by this count, so 256 leaves ten times the room.
# Layers that do not grow arrays (normalisation, softmax, activations) are not charged, and
# take up to about 3 times their input in working copies, so a forward's peak can reach about
# 3 times the budget: with this floor, a small file on a small input stays near 100 MB.
ACTIVATION_FLOOR = 32 * MiB
ACTIVATIONS_PER_MODEL_BYTE = 16
ACTIVATIONS_PER_INPUT_BYTE = 256


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what an archive may declare; exceeding one raises ``LimitError``.

    - ``max_manifest_bytes``: size of ``manifest.yaml``.
    - ``max_manifest_nodes``: YAML nodes (scalars, lists, mappings) in the manifest; bounds
      parse time and memory, which grow per node rather than per byte. A manifest outside
      the JSON subset modelpack writes takes the slower YAML parser, and each of its nodes
      counts four times.
    - ``max_architecture_nodes``: layers and graph nodes in the architecture, counted before
      they are validated; each costs about a hundred times a plain node to validate and build.
    - ``max_tensors``: members of the weight bundle (checked before the zip directory is read).
    - ``max_total_bytes``: declared uncompressed size of all tensors together.
    - ``max_compression_ratio``: a deflated member larger than 1 MiB may expand at most this
      many times its compressed size (the zip-bomb guard; real weights deflate ~1.1:1); all
      deflated members of a file together, at most this many times the file's size.
    - ``max_activation_bytes``: what one forward call of a loaded model may hold in layer and
      op outputs and their working arrays, checked before each allocation; None (the
      default) scales it: the largest of 32 MiB, 16 times the archive's size and 256 times
      the call's input.
    """

    max_manifest_bytes: int = 64 * MiB
    max_manifest_nodes: int = 2_000_000
    max_architecture_nodes: int = 10_000
    max_tensors: int = 100_000
    max_total_bytes: int = 64 * GiB
    max_compression_ratio: float = 100.0
    max_activation_bytes: int | None = None

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if value is None and field.name == "max_activation_bytes":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"Limits.{field.name} must be a positive number, found {value!r}")

    def activation_limit(self, *, model_bytes: int, input_bytes: int) -> int:
        """The activation budget of one forward call (see ``max_activation_bytes``)."""
        if self.max_activation_bytes is not None:
            return self.max_activation_bytes
        return max(
            ACTIVATION_FLOOR,
            ACTIVATIONS_PER_MODEL_BYTE * model_bytes,
            ACTIVATIONS_PER_INPUT_BYTE * input_bytes,
        )

    def max_inflated(self, file_size: int) -> int:
        """The most bytes all deflated members of one file may expand to together, however
        they nest (a deflated bundle of deflated tensors): the ratio limit applies to the
        whole file, so nesting cannot multiply it, and the grace is granted once."""
        return int(self.max_compression_ratio * file_size) + GRACE_BYTES


DEFAULT_LIMITS = Limits()
