"""MXNet's ``npx`` operators that are not ops of the op table (``nn.ops``), for d2l's chapters
that call them: ``modelpack.npx`` exports them under MXNet's names.

- ``spatial``: ``convolution`` and ``pooling`` as functions of arrays, with MXNet's arguments,
  computed by the convolution and pooling layers' kernels (``nn.kernels``) and recorded by
  autograd with those kernels' backward passes (d2l's multiple-GPU chapter trains a LeNet
  written with them).
- ``detection``: ``multibox_prior``, ``multibox_target``, ``multibox_detection`` and
  ``roi_pooling``, MXNet 1.9.1's CPU operators in float32, forward only.
- ``inputs``: what every one of them does first: refuse a traced ``forward`` (the op table is
  what a stored graph can hold; these are not in it), read autograd's recorded values, and
  parse MXNet's shape tuples.

None of them is in the op table, so none can be traced into an archive or exported to ONNX:
inside a traced ``forward`` each raises ``TraceError`` naming the layer to use instead.
"""

from __future__ import annotations

from .detection import multibox_detection, multibox_prior, multibox_target, roi_pooling
from .spatial import convolution, pooling

__all__ = ["convolution", "pooling", "multibox_prior", "multibox_target", "multibox_detection", "roi_pooling"]
