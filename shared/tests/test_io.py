import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dnnrepro.core import io


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    io.write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        io.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_sigkill_during_writes_never_leaves_a_torn_file(tmp_path):
    target = tmp_path / "results.json"
    script = (
        "import sys\nfrom dnnrepro.core import io\n"
        "i = 0\nwhile True:\n"
        "    i += 1\n"
        "    io.write_json(sys.argv[1], {'i': i, 'pad': 'x' * 200000})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(target)])
    deadline = time.time() + 30
    while not target.exists() and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    doc = json.loads(target.read_text())  # parses: old or new, never half
    assert doc["i"] >= 1 and len(doc["pad"]) == 200000


def test_written_files_get_normal_permissions(tmp_path):
    io.write_text(tmp_path / "a.txt", "hi")
    mode = (tmp_path / "a.txt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_sha256_helpers(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert io.sha256_file(tmp_path / "f") == io.sha256_bytes(b"abc") == expected


def test_non_finite_numbers_are_kept_as_strings(tmp_path):
    io.write_json(tmp_path / "r.json", {"a": float("nan"), "b": [float("inf"), 1.0]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": "nan", "b": ["inf", 1.0]}


def _cli_with_command(monkeypatch, command):
    """dnnrepro's main() with `dnnrepro list` replaced by ``command`` and no packages loaded."""
    from dnnrepro.core import cli

    monkeypatch.setattr(cli, "discover", lambda: {})
    monkeypatch.setattr(cli, "_cmd_list", command)
    return cli.main


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("dnnrepro: error: ") and "Traceback" not in captured.err
    return lines[0]


def test_cli_turns_a_write_into_a_file_path_into_one_line(tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    out.write_text("a file where --out should be a folder")
    main = _cli_with_command(monkeypatch, lambda _: io.write_json(out / "results.json", {}))
    assert main(["list"]) == 2
    line = _one_line_error(capsys)
    assert str(out) in line and "move it away" in line


def test_cli_turns_any_oserror_into_one_line(monkeypatch, capsys):
    def failing(_):
        raise PermissionError(13, "Permission denied", "/ro/out/results.json")

    assert _cli_with_command(monkeypatch, failing)(["list"]) == 2
    line = _one_line_error(capsys)
    assert "permission denied: /ro/out/results.json" in line and "permissions" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_reports_a_read_only_out_folder(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        main = _cli_with_command(monkeypatch, lambda _: io.write_json(out / "results.json", {}))
        assert main(["list"]) == 2
        assert str(out) in _one_line_error(capsys)
    finally:
        out.chmod(0o700)


def test_check_writable_names_the_folder_before_any_work(tmp_path):
    from dnnrepro.core.errors import ConfigError

    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match=r"output folder \(--out\) .*f/sub is not writable"):
        io.check_writable(tmp_path / "f" / "sub", "output folder (--out)")
    assert io.check_writable(tmp_path / "new" / "dir") == tmp_path / "new" / "dir"
    assert list((tmp_path / "new" / "dir").iterdir()) == []
