"""Bytes: the strict zip reader and the aligned zip writer, the ``.npz`` bundle and ``.npy``
headers, the plain-data YAML reader, resource limits, and paths/atomic writes.

Nothing here knows what a model is. It may import only ``modelpack.errors`` and itself;
everything above (``format``, ``nn``, ``tracing``, the public verbs) may import it.
"""
