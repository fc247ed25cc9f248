"""``modelpack.npx``: the chapter's ``npx.save``/``npx.load`` spelling, without MXNet.

``load`` reads what ``save`` writes (a modelpack archive) and what MXNet's ``npx.save`` and
Gluon's ``save_parameters`` wrote (a list, or a dict when the arrays are named); ``save``
writes a modelpack archive. Both are the public verbs themselves, under MXNet's names.

>>> from modelpack import npx
>>> npx.save("x-files", [x, y]); x2, y2 = npx.load("x-files")  # doctest: +SKIP
>>> mydict = npx.load("mydict")   # a file MXNet wrote                # doctest: +SKIP
"""

from __future__ import annotations

from .api import load, save

__all__ = ["load", "save"]
