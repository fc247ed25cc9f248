"""A spinner on a terminal while a command works (stderr), nothing when piped or redirected.

Conversions and checks of large files take seconds; a person at a terminal sees that the
command is alive, while scripts reading stdout or ``--json`` see nothing extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

__all__ = ["progress"]


@contextmanager
def progress(what: str) -> Iterator[None]:
    """Show ``what`` with a spinner for the duration of the block, on a terminal only."""
    from rich.console import Console

    console = Console(stderr=True)
    with console.status(what) if console.is_terminal else nullcontext():
        yield
