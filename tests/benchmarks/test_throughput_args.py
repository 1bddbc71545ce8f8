"""The throughput and continual benchmarks' options: a typo, a number out of range or a --json that is a folder is
one line naming the option (OneLineParser, exit 2) before anything is timed, not argparse's usage block, a
traceback from the config, or an IsADirectoryError after the whole run."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

SCRIPTS = [
    "continual",
    "data_throughput",
    "error_unit",
    "motion_throughput",
    "scale_throughput",
    "synthetic_throughput",
    "train_throughput",
]
REQUIRED = {"continual": ["--out", "NEW"]}  # the options a script cannot run without


def _one_error_line(script: str, argv: list[str], capsys) -> str:
    main = importlib.import_module(script).main
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1, err
    assert err[0].startswith(f"benchmarks/{script}.py: error: "), err[0]
    return err[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_typo_and_a_json_folder_are_one_line(script, tmp_path, capsys):
    req = [str(tmp_path / "new") if a == "NEW" else a for a in REQUIRED.get(script, [])]
    assert "unrecognized arguments: --jsno" in _one_error_line(script, [*req, "--jsno", "x"], capsys)
    line = _one_error_line(script, [*req, "--json", str(tmp_path)], capsys)
    assert f"argument --json: {tmp_path} is a folder" in line


@pytest.mark.parametrize(
    "script,argv,needle",
    [
        ("train_throughput", ["--T", "0"], "argument --T: 0: need at least 2"),  # was a ConfigError traceback
        ("train_throughput", ["--steps", "0"], "argument --steps: 0: need at least 1"),
        ("data_throughput", ["--clip-len", "1"], "argument --clip-len: 1: need at least 2"),
        ("motion_throughput", ["--threads", "0"], "argument --threads: 0: need at least 1"),
        ("scale_throughput", ["--batches", "0"], "argument --batches: 0: need at least 1"),
        ("continual", ["--out", "NEW", "--steps-a", "0"], "argument --steps-a: 0: need at least 1"),
    ],
)
def test_numbers_out_of_range_are_refused(script, argv, needle, tmp_path, capsys):
    argv = [str(tmp_path / "new") if a == "NEW" else a for a in argv]
    assert needle in _one_error_line(script, argv, capsys)


def test_json_in_a_folder_not_made_yet(tmp_path, capsys):
    """--json new/dir/s.json: the folders are made (it was a FileNotFoundError after the whole run)."""
    out = tmp_path / "new" / "dir" / "s.json"
    assert (
        importlib.import_module("synthetic_throughput").main(["--clips", "1", "--size", "16", "--json", str(out)]) == 0
    )
    assert out.is_file()


def test_error_unit_writes_its_json(tmp_path, monkeypatch, capsys):
    """--json is a path string (out_file); the figures are written to it after the timing (the timing is stubbed)."""
    mod = importlib.import_module("error_unit")
    row = {"shape": [1, 4, 8, 8], "fused_ms": 1.0, "eager_ms": 2.0, "compiled_ms": 4.0}
    monkeypatch.setattr(mod, "bench_shape", lambda *a, **k: row)
    out = tmp_path / "e.json"
    assert mod.main(["--channels", "4", "--sizes", "8x8", "--reps", "1", "--warmup", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["cpu"] == [row]


def test_data_throughput_prep_times_one_and_n_threads(tmp_path, capsys):
    import av
    import numpy as np

    for i in range(3):
        with av.open(str(tmp_path / f"v{i}.mkv"), "w") as c:
            s = c.add_stream("ffv1", rate=10)
            s.width, s.height, s.pix_fmt = 32, 32, "bgr0"
            for t in range(12):
                f = np.zeros((32, 32, 3), np.uint8)
                f[8:16, 2 * t : 2 * t + 8] = 255  # a square moving right
                for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                    c.mux(p)
            for p in s.encode():
                c.mux(p)
    main = importlib.import_module("data_throughput").main
    out = tmp_path / "r.json"
    argv = ["--data", str(tmp_path), "--size", "32", "32", "--clip-len", "4", "--repeats", "1", "--prep"]
    assert main([*argv, "--prep-workers", "2", "--json", str(out)]) == 0
    r = json.loads(out.read_text())["prep"]
    assert r["n_videos"] == 3 and [x["workers"] for x in r["by_workers"]] == [1, 2] and r["speedup"] > 0
    assert "speed-up with 2 threads" in capsys.readouterr().out
