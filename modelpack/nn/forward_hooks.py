"""Gluon's forward hooks: functions a user attaches to a block to watch its calls.

``block.register_forward_pre_hook(hook)`` calls ``hook(block, inputs)`` before each forward
and ``register_forward_hook(hook)`` calls ``hook(block, inputs, output)`` after it (``inputs``
is the tuple of arguments); each returns a ``HookHandle`` whose ``detach()`` removes the
hook. Hooks observe: what they return is ignored, as in Gluon. They are the user's code in
the user's process, never part of an archive: tracing for export records the computation
without them.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    from .block import Block

__all__ = ["HookHandle", "ForwardHooks", "PreHook", "PostHook", "silenced"]

PreHook = Callable[["Block", tuple[Any, ...]], Any]
PostHook = Callable[["Block", tuple[Any, ...], Any], Any]

_ids = itertools.count()
_quiet = threading.local()


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """No hook runs inside: ``export`` runs the user's forward to check its trace, which is
    not a call the user made."""
    previous = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = previous


class HookHandle:
    """Removes its hook with ``detach()``, or at the end of a ``with`` block."""

    def __init__(self, table: dict[int, Any], key: int) -> None:
        self._table, self._key = table, key

    def detach(self) -> None:
        self._table.pop(self._key, None)

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()


class ForwardHooks:
    """One block's hooks, run in registration order around its forward."""

    def __init__(self) -> None:
        self.pre: dict[int, PreHook] = {}
        self.post: dict[int, PostHook] = {}

    def __len__(self) -> int:
        """How many hooks are attached (0 once every handle is detached)."""
        return len(self.pre) + len(self.post)

    def add_pre(self, hook: PreHook) -> HookHandle:
        return self._add(self.pre, hook)

    def add_post(self, hook: PostHook) -> HookHandle:
        return self._add(self.post, hook)

    @staticmethod
    def _add(table: dict[int, Any], hook: Any) -> HookHandle:
        if not callable(hook):
            raise UsageError(f"a forward hook must be callable, got {type(hook).__name__}")
        key = next(_ids)
        table[key] = hook
        return HookHandle(table, key)

    def run(self, block: Block, args: tuple[Any, ...], call: Callable[..., Any]) -> Any:
        if getattr(_quiet, "on", False):
            return call(*args)
        for hook in list(self.pre.values()):
            hook(block, args)
        output = call(*args)
        for post in list(self.post.values()):
            post(block, args, output)
        return output
