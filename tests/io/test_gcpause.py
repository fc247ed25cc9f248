"""io.gcpause: the cycle collector off inside the block, the caller's setting restored."""

from __future__ import annotations

import gc

import pytest

from modelpack.io.gcpause import cycle_collection_paused


@pytest.fixture
def collector_restored():
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


@pytest.mark.usefixtures("collector_restored")
@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_is_off_inside_and_as_it_was_after_even_on_an_error_or_nested(enabled):
    (gc.enable if enabled else gc.disable)()
    with cycle_collection_paused():
        assert not gc.isenabled()
        with cycle_collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block restores what it found: off
    assert gc.isenabled() == enabled
    with pytest.raises(ZeroDivisionError), cycle_collection_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled() == enabled
