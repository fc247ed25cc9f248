"""``bench/_sections.py``: a run replaces its own section of BENCHMARKS.md and no other, even
when its heading is the start of another setting's ("…, cpu time" and "…, cpu time, numba
kernels"); copies an older writer left are dropped."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture
def sections(monkeypatch) -> ModuleType:
    """``bench/_sections.py``, imported as the scripts import it (their folder on the path)."""
    monkeypatch.syspath_prepend(str(BENCH))
    sys.modules.pop("_sections", None)
    return importlib.import_module("_sections")


def test_a_section_is_replaced_by_its_whole_heading(tmp_path, sections):
    write_section = sections.write_section
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# B\n\n## A, cpu time\nold\n\n## A, cpu time, numba kernels\nkept\n\n"
                      "## A, cpu time\nan older copy\n\n## Other\nkept too\n", encoding="utf-8")
    write_section("## A, cpu time", ["## A, cpu time", "new"], report)
    assert report.read_text(encoding="utf-8") == (
        "# B\n\n## A, cpu time\nnew\n\n## A, cpu time, numba kernels\nkept\n\n## Other\nkept too\n")
    write_section("## Z", ["## Z", "added"], report)
    assert report.read_text(encoding="utf-8").endswith("## Other\nkept too\n\n## Z\nadded\n")


def test_the_cpu_is_named_with_its_numbers_and_vector_units(tmp_path, sections):
    """Hosts that all call themselves "Intel(R) Xeon(R) Processor" are told apart."""
    cpu_model = sections.cpu_model
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\ncpu family\t: 6\nmodel\t\t: 167\nmodel name\t: Intel(R) Xeon(R) Processor\n"
                       "flags\t\t: fpu sse avx2 avx512f sha_ni\n", encoding="ascii")
    assert cpu_model(str(cpuinfo)) == "Intel(R) Xeon(R) Processor, family 6 model 167, AVX2/AVX-512/SHA-NI"
    cpuinfo.write_text("model name\t: Some CPU\n", encoding="ascii")  # (no numbers, no flags)
    assert cpu_model(str(cpuinfo)) == "Some CPU"


def test_a_hand_off_is_timed(sections):
    assert 0 < sections.handoff_microseconds(rounds=5, idle=0) < 1e6
