"""Bytes: zip records (``ziprecords``, declared once), the one zip writer (``zipwrite``: stored
members aligned, or deflated), the strict zip reader (``zipread``, ``zipio``), the ``.npz``
bundle and ``.npy`` headers, the plain-data YAML reader, resource limits, and paths/atomic
writes.

Nothing here knows what a model is. It may import only ``modelpack.errors`` and itself;
everything above (``format``, ``nn``, ``tracing``, the public verbs) may import it.
"""
