import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prednet2.datasets.inspect import main

REPO = Path(__file__).resolve().parents[2]


def test_mixed_folder_json(mixed_folder, tmp_path, capsys):
    rc = main([str(mixed_folder), "--clip-len", "4", "--json", "--cache-dir", str(tmp_path / "c")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(out) == {"n_videos", "n_clips", "n_skipped", "skipped", "n_truncated", "truncated"}
    assert (out["n_videos"], out["n_clips"], out["n_skipped"]) == (1, 3, 3)
    assert sorted(Path(s["path"]).name for s in out["skipped"]) == ["cut.mp4", "empty.mp4", "notes.mp4"]
    assert all(s["reason"] for s in out["skipped"])


def test_table_output(mixed_folder, tmp_path, capsys):
    assert main([str(mixed_folder), "--clip-len", "4", "--cache-dir", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "1 usable video(s), 3 clip(s), 3 skipped" in out and "good clip.mp4" in out and "empty file" in out


def test_no_usable_video_exits_2(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.mp4").write_bytes(b"")
    assert main([str(tmp_path / "bad"), "--json", "--cache-dir", str(tmp_path / "c")]) == 2
    cap = capsys.readouterr()
    out = json.loads(cap.out)
    assert out["n_videos"] == 0 and out["n_skipped"] == 1 and "no usable video" in cap.err


def test_bad_path_and_option_exit_2(tmp_path, capsys):
    for argv in ([str(tmp_path / "missing")], [str(tmp_path), "--clip-len", "0"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error:" in err


# Each run imports torch in a fresh interpreter (~5-10 s on a loaded 2-core machine): one is in the fast suite.
@pytest.mark.parametrize(
    "module", ["datasets.inspect", pytest.param("prednet2.datasets.inspect", marks=pytest.mark.slow)]
)
def test_module_entry_points(mixed_folder, tmp_path, module):
    cmd = [sys.executable, "-m", module, str(mixed_folder), "--clip-len", "4", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + ["--cache-dir", str(tmp_path / "c")], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["n_skipped"] == 3


def test_cache_dir_that_is_a_file_exits_2(mixed_folder, tmp_path, capsys):
    (tmp_path / "a_file").write_text("not a folder")
    assert main([str(mixed_folder), "--clip-len", "4", "--cache-dir", str(tmp_path / "a_file")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a_file (data.cache_dir) is a file, not a folder" in err, err


def test_a_labels_file_reports_videos_per_class(mixed_folder, tmp_path, capsys):
    # the table names the good clip and the corrupt one under two classes: one class keeps a video, one keeps none
    table = mixed_folder / "labels.csv"
    table.write_text("video,label\ngood sub ü/good clip.mp4,walk\ncut.mp4,run\n")
    rc = main([str(table), "--clip-len", "4", "--json", "--cache-dir", str(tmp_path / "c")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["classes"] == {"run": 0, "walk": 1}
    assert (out["n_videos"], out["n_skipped"]) == (1, 1) and out["skipped"][0]["path"].endswith("cut.mp4")
    assert main([str(table), "--clip-len", "4", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "walk" in capsys.readouterr().out


def test_labelled_reads_class_folders_as_the_probes_do(vt, tmp_path, capsys):
    for c in ("run", "walk"):
        for i in range(2):
            vt.write_video(tmp_path / "ucf" / c / f"{c}{i}.avi", vt.coded_frames(5, 8, 8), codec="mpeg4")
    rc = main([str(tmp_path / "ucf"), "--clip-len", "4", "--json", "--labelled", "--cache-dir", str(tmp_path / "c")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["classes"] == {"run": 2, "walk": 2} and out["n_videos"] == 4
    assert main([str(tmp_path / "ucf"), "--clip-len", "4", "--json", "--cache-dir", str(tmp_path / "c")]) == 0
    assert "classes" not in json.loads(capsys.readouterr().out)  # without --labelled: a training folder's view


def test_videos_cut_short_by_a_decode_error_are_reported(vt, tmp_path, capsys):
    """A video whose decoding fails partway is used up to the error: inspect counts and names it (the table names
    ten, as the loaders' warnings do; --json lists all), not only a log line that inspect silences."""
    import av

    root = tmp_path / "v"
    for i in range(12):
        vt.write_broken_mp4(root / f"broken{i:02d}.mp4")
    vt.write_video(root / "good.mp4", vt.coded_frames(12, 32, 32), codec="mpeg4")
    decoded = 0
    with pytest.raises(av.FFmpegError), av.open(str(root / "broken00.mp4")) as c:  # it really breaks midway
        for _ in c.decode(c.streams.video[0]):
            decoded += 1
    assert 4 <= decoded < 24
    args = [str(root), "--clip-len", "4", "--size", "16", "16", "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_videos"], out["n_skipped"], out["n_truncated"]) == (13, 0, 12)
    assert out["truncated"][0] == {"path": str(root / "broken00.mp4"), "frames": decoded}
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "13 usable video(s)" in table and "12 cut short or damaged" in table
    named = [line for line in table.splitlines() if line.startswith(str(root / "broken")) and "frames" in line]
    assert len(named) == 10 and "... and 2 more (--json lists every one)" in table
