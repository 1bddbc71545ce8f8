"""A probe through a labels table (--data FOLDER/labels.csv): its messages speak of the table's classes."""

import json
import shutil

import pytest
from prednet2.eval.linear_probe import main


def test_a_table_class_without_a_usable_video_is_not_called_a_folder(tiny_run, labelled_videos, tmp_path, capsys):
    root = tmp_path / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    rows = [f"{p.relative_to(root).as_posix()},{p.parent.name}" for p in sorted(root.glob("*/*.mkv"))]
    (root / "junk").mkdir()
    (root / "junk" / "only.mkv").write_text("a text file, not a video\n")
    (root / "table.csv").write_text("\n".join(["video,label", *rows, "junk/only.mkv,yellow"]) + "\n")
    argv = ["--checkpoint", str(tiny_run), "--data", str(root / "table.csv"), "--baseline", "pixels", "--seeds", "1"]
    assert main([*argv, "--device", "cpu", "--no-progress", "--out", str(tmp_path / "p.json")]) == 0
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["n_classes"] == 3 and r["chance"] == pytest.approx(1 / 3) and r["classes_without_videos"] == ["yellow"]
    err = capsys.readouterr().err
    assert "class(es) yellow hold no usable video (all skipped); the probe has 3 classes" in err, err
