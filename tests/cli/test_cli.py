"""The command line, run as a user runs it: a subprocess, its exit code, stdout and stderr."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
from models import mlp_ready, sequential_mlp

import modelpack
from modelpack.format.versions import FORMAT_VERSION


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "modelpack", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def user_error(run: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit 2, one ``modelpack: error:`` line naming the problem, never a traceback."""
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelpack: error: "), run.stderr
    assert fragment in lines[0], lines[0]


@pytest.fixture
def mlp_archive(tmp_path):
    path = tmp_path / "mlp.mpk"
    modelpack.export(sequential_mlp(256, 10), path, metadata={"author": "me"})
    return path


def test_inspect_shows_layers_and_totals(mlp_archive):
    run = cli("inspect", mlp_archive)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "author: me" in out and f"format {FORMAT_VERSION}" in out
    for fragment in ("Sequential", "Dense", "units=256, activation=relu", "(N, 256)", "5,376", "2,570"):
        assert fragment in out, fragment
    assert "7,946 parameters, 31.0 KiB of weights" in out  # 20*256+256 + 256*10+10
    assert len(out.splitlines()) <= 24  # fits a screen


def test_inspect_traced_model_and_tensors(tmp_path):
    net = mlp_ready()
    modelpack.export(net, tmp_path / "t.mpk", example=np.zeros((2, 20)))
    run = cli("inspect", tmp_path / "t.mpk")
    assert run.returncode == 0 and "Graph" in run.stdout and "source_class=MLP" in run.stdout
    modelpack.save(tmp_path / "d", {"x": np.zeros((2, 3), np.float16), "y": np.arange(4)})
    run = cli("inspect", tmp_path / "d")
    assert run.returncode == 0
    assert "float16" in run.stdout and "(2, 3)" in run.stdout and "2 tensors, 10 elements" in run.stdout


def test_inspect_json_is_the_manifest(mlp_archive):
    run = cli("inspect", mlp_archive, "--json")
    assert run.returncode == 0
    assert json.loads(run.stdout) == modelpack.inspect(mlp_archive).model_dump(mode="json")


@pytest.mark.parametrize("command", ["inspect", "verify"])
def test_missing_file_and_folder_are_user_errors(tmp_path, command):
    user_error(cli(command, tmp_path / "nosuch.mpk"), f"{tmp_path / 'nosuch.mpk'}: no such file")
    user_error(cli(command, tmp_path), f"{tmp_path}: is a folder, not a file")


def test_other_file_kinds_are_named(tmp_path):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps([1, 2]))
    user_error(cli("inspect", tmp_path / "x.pkl"), "is a Python pickle, not a modelpack archive")
    mlp_ready().save_parameters(tmp_path / "mlp.params")
    user_error(cli("inspect", tmp_path / "mlp.params"), "read it with net.load_parameters(path)")


def test_verify_exit_codes_and_json(mlp_archive):
    run = cli("verify", mlp_archive)
    assert run.returncode == 0 and run.stdout.startswith(
        f"{mlp_archive}: OK (format {FORMAT_VERSION}), 4 tensors verified"
    )
    run = cli("verify", mlp_archive, "--json")
    report = json.loads(run.stdout)
    assert (
        run.returncode == 0
        and report["ok"] is True
        and set(report["tensors"]) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    )
    data = bytearray(mlp_archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    mlp_archive.write_bytes(bytes(data))
    run = cli("verify", mlp_archive, "--json")
    assert run.returncode == 1 and json.loads(run.stdout)["ok"] is False and "Traceback" not in run.stderr


def test_bad_arguments_exit_2():
    run = cli("inspect")
    assert run.returncode == 2 and "usage:" in run.stderr and "Traceback" not in run.stderr
    assert cli("nosuchcommand").returncode == 2


def test_schema_check_write_and_print(tmp_path):
    run = cli("schema", "--check", cwd=tmp_path)  # the repo's schema/, wherever it is run from
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "schema").exists()
    run = cli("schema")
    assert run.returncode == 0 and json.loads(run.stdout)["title"] == "Manifest"


def test_demo_cleans_up_unless_workdir(tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"  # the demo's own temporary folder, away from other runs' /tmp
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    run = cli("demo")
    assert run.returncode == 0, run.stderr
    assert f"writing to {scratch}" in run.stdout  # it did use a folder in TMPDIR ...
    assert list(scratch.iterdir()) == []  # ... and removed it
    run = cli("demo", "--workdir", tmp_path / "work")
    assert run.returncode == 0 and (tmp_path / "work" / "mlp.mpk").exists()


def test_a_spinner_on_a_terminal_and_nothing_when_piped(mlp_archive):
    """verify (like convert and diff) says what it is doing on a terminal, on stderr only."""
    import os
    import pty

    master, slave = pty.openpty()
    run = subprocess.run([sys.executable, "-m", "modelpack", "verify", str(mlp_archive)],
                         stdin=slave, stdout=slave, stderr=slave, env={**os.environ, "TERM": "xterm"}, check=False)
    os.close(slave)
    shown = b""
    try:
        while chunk := os.read(master, 65536):
            shown += chunk
    except OSError:  # the pty's other end is closed: all is read
        pass
    os.close(master)
    assert run.returncode == 0 and b"verifying" in shown  # (the path may wrap on a narrow pty)
    piped = cli("verify", mlp_archive)
    assert "verifying" not in piped.stdout + piped.stderr


def test_commands_import_only_what_they_need(tmp_path):
    # --help starts without numpy; inspecting or verifying a file of tensors imports neither
    # the layer library nor the MXNet reader (a fresh process's start is most of a command's
    # time: ~60 ms of ~400 here).
    path = tmp_path / "t.mpk"
    modelpack.save(path, {"w": np.ones((2, 3), np.float32)})
    code = (
        "import contextlib, io, sys\n"
        "from modelpack import cli\n"
        "cli._parser(); print('numpy' in sys.modules)\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert cli.main(['inspect', {str(path)!r}]) == 0 and cli.main(['verify', {str(path)!r}]) == 0\n"
        "heavy = ('modelpack.nn', 'modelpack.interop', 'modelpack.tracing')\n"
        "print(sorted({'.'.join(m.split('.')[:2]) for m in sys.modules if m.startswith(heavy)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["False", "[]"]
