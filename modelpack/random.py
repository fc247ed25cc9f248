"""``modelpack.random``: one seed for every generator training uses, and their exact states.

As with MXNet's ``mx.random.seed``, one call makes a run reproducible: the library draws its
randomness from a few named *streams*, each a numpy ``Generator`` derived from the seed and
its name, so adding a stream never shifts another's numbers.

- ``"init"``: ``Block.initialize()`` and ``Parameter.initialize()`` without their own seed;
- ``"dropout"``: the masks of every ``Dropout`` layer and of the ``dropout`` op (``npx.dropout``,
  recurrent layers' dropout, traced graphs);
- ``"data"``: the shuffling of ``gluon.data.DataLoader``.

Without ``seed()`` the streams start from fresh OS entropy, as numpy's ``default_rng()`` does.
``get_state``/``set_state`` capture and restore every stream exactly, which is what a
checkpoint stores (``modelpack.Checkpointer``).

>>> modelpack.random.seed(0)                                   # doctest: +SKIP
>>> mask = modelpack.random.generator("dropout").random(4)     # doctest: +SKIP
"""

from __future__ import annotations

import threading
import zlib
from typing import Any

import numpy as np

from .errors import UsageError

__all__ = ["seed", "generator", "get_state", "set_state", "generator_state", "set_generator_state"]

# Bit generators whose state is two 128-bit integers plus a cached half word: numpy's default
# (PCG64) and its successor. Others (MT19937's 624 words, Philox's counters) are refused
# when saved rather than stored approximately.
SAVABLE_BIT_GENERATORS = ("PCG64", "PCG64DXSM")

_lock = threading.Lock()
_seed: int | None = None
_streams: dict[str, np.random.Generator] = {}


def seed(value: int) -> None:
    """Seed every stream, past and future: each restarts from ``(value, its name)``.

    >>> modelpack.random.seed(42)  # doctest: +SKIP
    """
    global _seed
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise UsageError(f"modelpack.random.seed expects a non-negative int, got {value!r}")
    with _lock:
        _seed = int(value)
        _streams.clear()


def generator(name: str) -> np.random.Generator:
    """The shared stream called ``name``, created on first use from the seed and the name."""
    with _lock:
        stream = _streams.get(name)
        if stream is None:
            stream = _streams[name] = _fresh(name)
        return stream


def _fresh(name: str) -> np.random.Generator:
    if _seed is None:
        return np.random.default_rng()
    return np.random.default_rng([_seed, zlib.crc32(name.encode("utf-8"))])


def get_state() -> dict[str, Any]:
    """The seed and every stream's exact state, as JSON-able data (see ``generator_state``)."""
    with _lock:
        return {
            "seed": _seed,
            "streams": {name: generator_state(stream, name) for name, stream in sorted(_streams.items())},
        }


def set_state(state: dict[str, Any]) -> None:
    """Restore what ``get_state`` returned: streams it lists get their saved state, and streams
    it does not list start afresh from the saved seed (they had not been used yet)."""
    global _seed
    with _lock:
        _seed = state.get("seed")
        _streams.clear()
        for name, saved in state.get("streams", {}).items():
            stream = _streams[name] = _fresh(name)
            set_generator_state(stream, saved, name)


def generator_state(rng: np.random.Generator, name: str = "generator") -> dict[str, Any]:
    """A generator's exact state as JSON-able data; 128-bit numbers become hex strings."""
    bit_generator = rng.bit_generator
    state = bit_generator.state
    kind = state.get("bit_generator")
    if kind not in SAVABLE_BIT_GENERATORS:
        raise UsageError(
            f"cannot save the state of {name!r}: its bit generator is {kind}, and modelpack "
            f"saves {', '.join(SAVABLE_BIT_GENERATORS)} (np.random.default_rng() makes PCG64)"
        )
    return {
        "bit_generator": kind,
        "state": hex(state["state"]["state"]),
        "inc": hex(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def set_generator_state(rng: np.random.Generator, saved: dict[str, Any], name: str = "generator") -> None:
    """Put ``rng`` in the state ``generator_state`` described (the bit generators must match)."""
    kind = rng.bit_generator.state.get("bit_generator")
    if saved["bit_generator"] != kind:
        raise UsageError(
            f"cannot restore {name!r}: the saved state is of a {saved['bit_generator']} generator, "
            f"but the generator given uses {kind}"
        )
    rng.bit_generator.state = {
        "bit_generator": kind,
        "state": {"state": int(saved["state"], 16), "inc": int(saved["inc"], 16)},
        "has_uint32": int(saved["has_uint32"]),
        "uinteger": int(saved["uinteger"]),
    }
