"""Block's Gluon methods that are not about children and parameters: ``hybridize`` and
``export``, forward hooks, ``name_scope``, ``summary`` and ``cast``. ``Block`` inherits them;
this module keeps ``block.py`` to the tree, its parameters and its call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from ..errors import UnsupportedBlockError, UsageError
from .forward_hooks import ForwardHooks, HookHandle, PostHook, PreHook

if TYPE_CHECKING:
    from .block import Block
    from .parameter import Parameter

__all__ = ["GluonAPI"]


class GluonAPI:
    """Mixed into ``Block``: Gluon's hybridization, export, hooks, name scopes, summary, cast."""

    # Gluon's forward hooks (forward_hooks.py), and the inputs of the last call once
    # hybridize() was called (what Gluon's export() saves the graph for): None until used.
    _forward_hooks: ForwardHooks | None = None
    _last_inputs: tuple[Any, ...] | None = None
    _hybridized: bool = False
    _runtime: Any = None  # the runtime running inference, for hybridize(backend=...)
    if TYPE_CHECKING:
        _reg_params: dict[str, Parameter]

        def named_blocks(self, prefix: str = "") -> Iterator[tuple[str, Block]]: ...

    def hybridize(self, active: bool = True, backend: str | None = None, **kwargs: Any) -> None:
        """Gluon's switch to a symbolic graph. As in Gluon, a hybridized block remembers its
        last call's inputs, so that ``export(path)`` needs no example. By default computation
        does not change (numpy runs eagerly and ``modelpack.export`` traces a model when it
        is saved). ``backend="onnxruntime"`` (MXNet 1.9's argument for a graph runtime; the
        ``onnx`` extra) runs this block's inference calls on onnxruntime, traced on their
        inputs, and training calls on numpy (see ``interop.onnx.runtime``). Other keyword
        arguments (``static_alloc``, ``backend_opts``, ...) are accepted and ignored."""
        runtime = None
        if active and backend is not None:
            if backend != "onnxruntime":
                raise UsageError(f"hybridize: unknown backend {backend!r}; the one there is: 'onnxruntime'")
            from ..interop.onnx.runtime import engine_for  # (late: the core imports translators lazily)

            runtime = engine_for(cast("Block", self))
        for _, block in self.named_blocks():
            object.__setattr__(block, "_hybridized", bool(active))
            object.__setattr__(block, "_runtime", None)
            if not active:
                object.__setattr__(block, "_last_inputs", None)
        object.__setattr__(self, "_runtime", runtime)

    def export(self, path: str, epoch: int = 0, remove_amp_cast: bool = True) -> str:
        """Gluon's deployment export, as one archive: writes ``{path}-{epoch:04d}.mpk`` (the
        architecture and the weights; Gluon writes ``-symbol.json`` and ``-0000.params``) and
        returns its name. ``modelpack.load`` (or ``gluon.SymbolBlock.imports``) reads it back.

        A network of registered layers needs nothing more; a custom ``forward`` is traced on
        the inputs of the last call after ``hybridize()``, as Gluon requires.

        >>> net.hybridize(); net(x); net.export("mlp")    # doctest: +SKIP
        'mlp-0000.mpk'
        """
        from ..api import export  # late: the public export sits above the layer library

        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise UsageError(f"epoch must be a non-negative int, got {epoch!r}")
        target = f"{path}-{epoch:04d}.mpk"
        example = self._last_inputs
        try:
            single = example[0] if example and len(example) == 1 else example
            export(cast("Block", self), target, example=single)
        except UnsupportedBlockError as exc:
            if example is None and "example" in str(exc):
                raise UsageError(
                    f"cannot export {type(self).__name__}: its forward is custom code, traced on "
                    "the inputs of a call; call net.hybridize(), then net(x) once, then "
                    "net.export(path) (or modelpack.export(net, path, example=x))"
                ) from None
            raise
        return target

    def register_forward_pre_hook(self, hook: PreHook) -> HookHandle:
        """Call ``hook(block, inputs)`` before each forward (Gluon's API); ``.detach()`` removes it."""
        return self._hooks().add_pre(hook)

    def register_forward_hook(self, hook: PostHook) -> HookHandle:
        """Call ``hook(block, inputs, output)`` after each forward (Gluon's API); ``.detach()``
        removes it."""
        return self._hooks().add_post(hook)

    def _hooks(self) -> ForwardHooks:
        if self._forward_hooks is None:
            object.__setattr__(self, "_forward_hooks", ForwardHooks())
        assert self._forward_hooks is not None
        return self._forward_hooks

    def name_scope(self) -> contextlib.AbstractContextManager[None]:
        """Accepted for Gluon code (``with self.name_scope():``); names are unique without it."""
        return contextlib.nullcontext()

    def summary(self, *inputs: Any) -> None:
        """Print Gluon's summary table: each layer's output shape and parameter count for
        ``inputs`` (the parameters must be initialized)."""
        from .summary import summary_table  # late: summary imports nn.compose, which imports this

        print(summary_table(cast("Block", self), inputs))

    def cast(self, dtype: str | np.dtype) -> None:
        """Cast every parameter (and the layers' compute dtype) to ``dtype``."""
        for _, block in self.named_blocks():
            if hasattr(block, "_dtype"):
                object.__setattr__(block, "_dtype", np.dtype(dtype))
            for param in block._reg_params.values():
                param.cast(dtype)

