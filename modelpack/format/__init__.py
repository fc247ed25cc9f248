"""The ``.mpk`` format: the manifest schema and its versions, the container (member rules,
writing), ``Archive`` (open, full and mapped loads), ``verify``, and the Block tree ↔
architecture tree translation.

It may import ``nn`` (layer registry, blocks), ``tracing`` (trace results to describe) and
``io``; only the public verbs (``modelpack.api``, the CLI) import it.
"""
