"""The benchmark script still runs: its smallest workload end to end, once, in this process.

This checks the script, not speed: every method either runs (and its tensors match the
workload bit for bit) or says why it is not available, the tables and the report are
written, and one save and two loads go through the peak-RSS child process.
"""

from __future__ import annotations

import pytest
from bench_scripts import bench_script


@pytest.fixture(scope="module")
def bench_run():
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield bench_script(monkeypatch, "run", needs="safetensors")


def test_smallest_workload_end_to_end(bench_run, tmp_path, capsys, monkeypatch):
    # Timing hygiene is not what this checks, and a full collection per timed call in a big
    # pytest process costs seconds.
    monkeypatch.setattr(bench_run.gc, "collect", lambda: 0)
    report = tmp_path / "BENCHMARKS.md"
    # --dynamic-malloc: leave this test process's allocator settings alone.
    code = bench_run.main(["--sizes", "1MB", "--repeats", "1", "--no-rss", "--dynamic-malloc",
                           "--dir", str(tmp_path), "--write", str(report)])
    out, err = capsys.readouterr()
    assert code == 0, err
    for method in bench_run.METHODS:
        row = next(line for line in out.splitlines() if line.startswith(f"| {method.name} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1].endswith(" ms") or cells[1].startswith("n/a ("), row
    assert "### Targets of issues 6 and 15" in out
    text = report.read_text()
    for heading in ("# Benchmarks", "## Machine", "## Method", "## Results", "## Notes"):
        assert f"\n{heading}\n" in f"\n{text}", heading
    assert out.strip() in text
    assert [p.name for p in tmp_path.iterdir()] == ["BENCHMARKS.md"]  # the temp folder is gone


def test_peak_rss_children(bench_run, tmp_path):
    from _methods import by_name
    from _rss import RssResult, measure

    workload = bench_run.WORKLOADS["1MB"]
    warmups, files = tmp_path / "warm-up", tmp_path / "files"
    warmups.mkdir()
    files.mkdir()
    bench_run.write_warmups(str(warmups))
    arrays = bench_run.build_arrays(workload, bench_run.SEED)
    paths, warm = bench_run._paths(str(files)), bench_run._paths(str(warmups))
    by_name("np.savez").run(arrays, paths["npz"])

    loaded = measure(by_name("np.load"), "1MB", bench_run.SEED, paths["npz"], warm["npz"])
    assert isinstance(loaded, RssResult), loaded
    assert 0.5 < loaded.peak / workload.nbytes < 4

    lazy = measure(by_name("np.load + 1 tensor"), "1MB", bench_run.SEED, paths["npz"],
                             warm["npz"])
    assert isinstance(lazy, RssResult), lazy
    assert lazy.untouched is not None and lazy.untouched < lazy.peak

    saved = measure(by_name("raw write"), "1MB", bench_run.SEED, paths["raw"], warm["raw"])
    assert isinstance(saved, RssResult), saved
    assert saved.peak < workload.nbytes  # writing reuses the arrays it is given
    assert sorted(p.name for p in files.iterdir()) == ["weights.npz"]  # the child removed its file


def test_quick_warmups_leave_out_the_skipped_methods(bench_run, tmp_path):
    # --quick never imports torch: its objects made every timed call's gc.collect ~40 ms slower.
    full, quick = tmp_path / "full", tmp_path / "quick"
    full.mkdir()
    quick.mkdir()
    bench_run.write_warmups(str(full))
    bench_run.write_warmups(str(quick), quick=True)
    skipped = {bench_run._paths(str(full))[m.file].rsplit("/", 1)[1] for m in bench_run.METHODS
               if m.name.startswith(bench_run.QUICK_SKIPS) and m.kind == "save" and m.unavailable() is None}
    assert skipped, "nothing to leave out: the test checks nothing"
    assert {p.name for p in quick.iterdir()} == {p.name for p in full.iterdir()} - skipped
