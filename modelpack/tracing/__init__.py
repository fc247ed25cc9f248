"""Tracing a custom Block's ``forward`` into a graph of registered ops: recording with
stand-in arrays, symbolic (dynamic) sizes found by tracing twice, and the final check of the
graph against ``forward``.

It may import ``nn`` (the op table, blocks, ``GraphSpec``) and ``errors``; ``format`` reads
its results and the public verbs drive it.
"""
