"""Every attack runs twice: with the zip directories checked entry by entry, and with the column
checks (io.zipbatch) tried first on every directory, however small; both must refuse alike."""

from __future__ import annotations

import pytest

from modelpack.io import zipread


@pytest.fixture(autouse=True, params=["entries", "columns"])
def _zip_checks(request, monkeypatch):
    if request.param == "columns":
        monkeypatch.setattr(zipread, "BATCH_MIN", 1)
