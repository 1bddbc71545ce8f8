"""eval.linear_probe end to end on a tiny random model and a tiny synthetic task (seconds, not minutes)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from prednet2.eval.linear_probe import main

SMALL = ["--data", "synthetic:shapes:direction", "--n-train", "48", "--n-test", "24", "--seeds", "2",
         "--device", "cpu", "--batch-size", "16"]  # fmt: skip
DESIGN_KEYS = {"dataset", "top1", "top1_std", "per_layer", "n_train", "n_test", "n_classes", "seeds"}


def run_probe_cli(tiny_run, out, *extra):
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    assert main(["--checkpoint", ckpt, "--out", str(out), *SMALL, *extra]) == 0
    return json.loads(out.read_text())


def test_probe_json_has_every_key_and_caches(tiny_run, tmp_path):
    r = run_probe_cli(tiny_run, tmp_path / "probe.json")
    assert DESIGN_KEYS <= set(r)
    assert r["dataset"] == "synthetic:shapes:direction"
    assert r["n_train"] == 48 and r["n_test"] == 24 and r["n_classes"] == 8
    assert r["seeds"] == [0, 1]
    assert set(r["per_layer"]) == {"0", "1"}
    assert 0.0 <= r["top1"] <= 1.0 and r["top1_std"] >= 0.0
    assert r["top1"] == r["concat"] and r["top1_is"] == "concat"
    assert r["variant"] == "trained" and r["steps"] == 3
    assert r["environment"]["kernels"] and r["environment"]["threads"] >= 1  # probes differ a little by CPU kernels
    assert len(r["best_layer"]) == 2 and set(r["best_layer"]) <= {"0", "1"}
    assert r["cache_hits"] == 0
    # Second call: both splits come from the cache and every figure is identical.
    r2 = run_probe_cli(tiny_run, tmp_path / "probe2.json")
    assert r2["cache_hits"] == 2
    for k in ["top1", "top1_std", "per_layer", "best_layer", "chosen_c"]:
        assert r2[k] == r[k]


def test_random_init_and_pixels(tiny_run, tmp_path):
    ri = run_probe_cli(tiny_run, tmp_path / "ri.json", "--random-init", "--layers", "1")
    assert ri["random_init"] is True and ri["variant"] == "random_init" and ri["steps"] == 0
    assert set(ri["per_layer"]) == {"1"}
    px = run_probe_cli(tiny_run, tmp_path / "px.json", "--baseline", "pixels")
    assert px["baseline"] == "pixels" and set(px["per_layer"]) == {"0"}
    assert px["top1"] == px["per_layer"]["0"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--checkpoint", "/nonexistent/last.pt"], "/nonexistent/last.pt"),
        (["--data", "synthetic:nope"], "synthetic:nope"),
        (["--data", "synthetic:shapes"], "no labels"),
        (["--layers", "7"], "--layers"),
        (["--layers", "x"], "--layers"),
        (["--layers", "0,,1"], "--layers '0,,1'"),
        (["--layers", "0,0"], "named twice"),
        (["--fold", "2"], "--fold 2 picks a fold of --splits DIR"),
        (["--random-init", "--baseline", "pixels"], "--random-init"),
    ],
)
def test_bad_input_exits_2_with_one_line(tiny_run, tmp_path, capsys, argv, needle):
    base = {"--checkpoint": str(tiny_run / "checkpoints" / "last.pt"), "--data": "synthetic:shapes:direction"}
    for i in range(0, len(argv) - 1):
        if argv[i] in base:
            base.pop(argv[i])
    args = [x for kv in base.items() for x in kv] + argv
    with pytest.raises(SystemExit) as e:
        main([*args, "--out", str(tmp_path / "p.json"), "--n-train", "16", "--n-test", "8", "--seeds", "1"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize(
    "sizes, needle",
    [
        (["--n-train", "3"], "--n-train 3: the probe carves a validation split from train, which needs more"),
        (["--n-train", "8"], "8 classes; give --n-train 9 or more"),
        (["--n-train", "12", "--shots", "5"], "--shots 5: --n-train 12 gives fewer than 5 train clips per class"),
    ],
)
def test_too_few_synthetic_train_clips_fail_before_extraction(tiny_run, tmp_path, capsys, sizes, needle):
    """Sizes that cannot serve the probe exit 2 before any feature is extracted (no cache written), not after."""
    cache = tmp_path / "cache"
    argv = ["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--data", "synthetic:shapes:direction",
            "--out", str(tmp_path / "p.json"), "--n-test", "8", "--seeds", "1", "--cache-dir", str(cache),
            *sizes]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not cache.exists() and not (tmp_path / "p.json").exists()


def test_module_entry_point_exit_code(tmp_path):
    """`python -m prednet2.eval.linear_probe` runs as a module and keeps the exit-2 contract."""
    p = subprocess.run(
        [sys.executable, "-m", "prednet2.eval.linear_probe", "--checkpoint", str(tmp_path / "missing.pt"),
         "--data", "synthetic:shapes:direction", "--out", str(tmp_path / "p.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "missing.pt" in p.stderr


def _write_clip(path, brightness: int, n: int = 8, size: int = 32):
    """A small lossless mkv (ffv1) of ``n`` frames whose brightness encodes the class."""
    import av
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(path.name)) % 2**32)
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.height = s.width = size
        s.pix_fmt = "bgr0"
        for _ in range(n):
            f = np.clip(brightness + rng.integers(-20, 20, (size, size, 3)), 0, 255).astype(np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def test_ucf101_folder_with_and_without_split_lists(tiny_run, tmp_path):
    """A class-per-folder set: the stratified split by default, and trainlist01/testlist01 with --splits."""
    root = tmp_path / "ucf"
    for cls, b in [("dark", 40), ("bright", 200)]:
        for i in range(5):
            _write_clip(root / cls / f"v{i}.mkv", b)
    (root / "notes").mkdir()  # a folder without video is not a class
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "trainlist01.txt").write_text("dark/v0.mkv 1\ndark/v1.mkv 1\nbright/v0.mkv 2\nbright/v1.mkv 2\n")
    (splits / "testlist01.txt").write_text("dark/v2.mkv\nbright/v2.mkv\n")
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    common = ["--checkpoint", ckpt, "--data", str(root), "--baseline", "pixels", "--seeds", "1", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "a.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["n_classes"] == 2 and a["n_train"] + a["n_test"] == 10 and a["n_test"] == 2  # 20% of each class
    assert a["top1"] == 1.0  # brightness separates the classes
    assert main([*common, "--out", str(tmp_path / "b.json"), "--splits", str(splits), "--fold", "1"]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert (b["n_train"], b["n_test"]) == (4, 2)


def test_a_labels_file_names_the_classes_and_keys_the_cache(tiny_run, tmp_path):
    """A flat folder with labels.csv: the table gives the classes; editing a row relabels, not a stale cache hit."""
    root = tmp_path / "flat"
    for i in range(10):
        _write_clip(root / f"v{i}.mkv", 40 if i < 5 else 200)
    table = root / "labels.csv"
    table.write_text("video,label\n" + "".join(f"v{i}.mkv,{'dark' if i < 5 else 'bright'}\n" for i in range(10)))
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    common = ["--checkpoint", ckpt, "--data", str(table), "--baseline", "pixels", "--seeds", "1", "--device", "cpu"]
    assert main([*common, "--out", str(tmp_path / "a.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["n_classes"] == 2 and (a["n_train"], a["n_test"]) == (8, 2) and a["top1"] == 1.0
    # the flat folder itself (no class folders) reads the labels.csv beside its videos: the same probe
    folder = [*common[:3], str(root), *common[4:]]
    assert main([*folder, "--out", str(tmp_path / "f.json")]) == 0
    f = json.loads((tmp_path / "f.json").read_text())
    assert (f["n_classes"], f["n_train"], f["n_test"], f["top1"]) == (2, 8, 2, 1.0)
    # the same videos, labels that brightness cannot tell apart: the cached features must not carry old labels
    table.write_text("video,label\n" + "".join(f"v{i}.mkv,{'odd' if i % 2 else 'even'}\n" for i in range(10)))
    assert main([*common, "--out", str(tmp_path / "b.json")]) == 0
    b = json.loads((tmp_path / "b.json").read_text())
    assert b["cache_hits"] == 0 and b["n_classes"] == 2 and b["top1"] < 1.0


def test_a_corrupt_file_is_skipped_and_counted(tiny_run, videos_and_a_corrupt_file, tmp_path, capsys):
    """One unreadable file does not stop the probe: it is left out, and probe.json and the summary line count it."""
    argv = ["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--baseline", "pixels"]
    assert main([*argv, "--seeds", "1", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "p.json")]) == 0
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["n_train"] + r["n_test"] == 12 and r["n_skipped"] == 1 and r["skipped"][0]["path"].endswith("notes.mkv")
    assert "; 1 unusable file(s) skipped ->" in capsys.readouterr().out


def test_a_class_folder_without_a_usable_video_is_no_class(tiny_run, labelled_videos, tmp_path, capsys):
    """A class whose every video is skipped was counted (4 classes, chance 0.25) though no clip could carry it."""
    import shutil

    root = tmp_path / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    (root / "yellow").mkdir()
    (root / "yellow" / "only.mkv").write_text("a text file, not a video\n")
    argv = ["--checkpoint", str(tiny_run), "--data", str(root), "--baseline", "pixels", "--seeds", "1"]
    assert main([*argv, "--device", "cpu", "--no-progress", "--out", str(tmp_path / "p.json")]) == 0
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["n_classes"] == 3 and r["chance"] == pytest.approx(1 / 3) and r["classes_without_videos"] == ["yellow"]
    assert (
        "class folder(s) yellow hold no usable video (all skipped); the probe has 3 classes" in capsys.readouterr().err
    )


def test_a_probe_left_with_one_class_names_the_classes_that_lost_every_video(
    tiny_run, labelled_videos, tmp_path, capsys
):
    """Two classes, one of them all corrupt files: the one-line error says the split holds a single class and why."""
    import shutil

    root = tmp_path / "videos"
    keep = sorted(p.name for p in labelled_videos.iterdir() if p.is_dir() and not p.name.startswith("."))[0]
    shutil.copytree(labelled_videos / keep, root / keep, ignore=shutil.ignore_patterns(".prednet2_cache"))
    (root / "broken").mkdir()
    for i in range(3):
        (root / "broken" / f"v{i}.mkv").write_text("a text file, not a video\n")
    argv = ["--checkpoint", str(tiny_run), "--data", str(root), "--baseline", "pixels", "--seeds", "1"]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--device", "cpu", "--no-progress", "--out", str(tmp_path / "p.json")])
    assert e.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "single class" in last and "class folder(s) broken hold no usable video: all skipped" in last


def test_padded_videos_are_counted_in_the_json(tiny_run, labelled_videos, tmp_path):
    """Videos shorter than a clip are padded with their last frame: said on stderr, and now in probe.json too."""
    argv = ["--checkpoint", str(tiny_run), "--data", str(labelled_videos), "--baseline", "pixels", "--seeds", "1"]
    for clip_len, want in (("16", (3, 14)), ("8", (0, None))):  # each class's first video has 14 frames
        out = tmp_path / f"p{clip_len}.json"
        assert main([*argv, "--clip-len", clip_len, "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
        r = json.loads(out.read_text())
        assert (r["n_padded"], r["shortest_padded"]) == want


def test_resplit_says_once_which_videos_are_padded(tiny_run, labelled_videos, tmp_path, caplog):
    """--resplit reads split "all": the fixed train split built for its label checks says nothing of its own (it
    printed the padding warning a second time, with other counts)."""
    argv = ["--checkpoint", str(tiny_run), "--data", str(labelled_videos), "--baseline", "pixels", "--seeds", "2"]
    out = tmp_path / "p.json"
    argv += ["--resplit", "--clip-len", "16", "--device", "cpu", "--no-progress", "--out", str(out)]
    with caplog.at_level("WARNING", logger="prednet2.datasets"):
        assert main(argv) == 0
    said = [r.getMessage() for r in caplog.records if "shorter than a clip" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith("3 of ")
    assert json.loads(out.read_text())["n_padded"] == 3


def test_resplit_draws_the_folder_split_of_each_seed(tiny_run, tmp_path, capsys, monkeypatch):
    """--resplit: seed s tests on the videos LabelledVideoFolder(seed=data_seed + s) puts in test; others refuse it."""
    from prednet2.datasets.labelled import LabelledVideoFolder
    from prednet2.eval.featureset import FeatureSource
    from prednet2.eval.linear_probe import build_parser

    root = tmp_path / "ucf"
    for cls, b in [("dark", 40), ("bright", 200)]:
        for i in range(10):
            _write_clip(root / cls / f"v{i}.mkv", b, n=4, size=16)
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    common = ["--checkpoint", ckpt, "--data", str(root), "--baseline", "pixels", "--device", "cpu", "--no-cache"]
    args = build_parser().parse_args([*common, "--out", str(tmp_path / "r.json"), "--resplit", "--data-seed", "3"])
    src = FeatureSource(args)
    _, y, vids = src.features_of("all")
    names = [Path(src.dataset("all").videos[v]).relative_to(root).as_posix() for v in vids]
    seen = set()
    for s in range(3):
        _, y_tr, _, y_te = src.train_test(s)
        test = LabelledVideoFolder(root, split="test", seed=3 + s, clip_len=4, size=(16, 16), progress=False,
                                   cache_dir=str(tmp_path / "c"))  # fmt: skip
        want = sorted(Path(p).relative_to(root).as_posix() for p in test.videos)
        got = sorted(n for n, t in zip(names, src.resplit_test_mask(vids, 3 + s)) if t)
        assert got == want and len(y_te) == 4 and len(y_tr) == 16
        seen.add(tuple(got))
    assert len(seen) > 1  # the seeds do test on other videos
    assert main([*common, "--out", str(tmp_path / "r.json"), "--resplit", "--seeds", "3"]) == 0
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["resplit"] is True and (r["n_train"], r["n_test"]) == (16, 4) and r["top1"] == 1.0
    # --data as a relative path, as the docs write it (the videos' paths are absolute): was a ValueError
    monkeypatch.chdir(tmp_path)
    rel = ["--data", "ucf", "--out", str(tmp_path / "rel.json"), "--resplit", "--seeds", "2"]
    assert main([*common[:2], *common[4:], *rel]) == 0
    assert json.loads((tmp_path / "rel.json").read_text())["n_test"] == 4
    for bad in (["--data", "synthetic:shapes:direction"], ["--splits", str(tmp_path)]):
        with pytest.raises(SystemExit) as e:
            main([*common, *bad, "--out", str(tmp_path / "x.json"), "--resplit"])
        assert e.value.code == 2 and "--resplit" in capsys.readouterr().err


def test_readout_options_change_the_features_and_their_cache(tiny_run, tmp_path):
    base = run_probe_cli(tiny_run, tmp_path / "base.json")  # the checkpoint's readout: the defaults
    assert base["readout"] == {"readout": "a,r,da,f", "readout_bins": 2, "readout_whole": True, "readout_trend": False,
                               "readout_pool": "mean", "readout_warmup": 0,
                               "readout_reverse": False}  # fmt: skip
    one = run_probe_cli(tiny_run, tmp_path / "b1.json", "--readout-bins", "1")
    assert one["readout"]["readout_bins"] == 1 and one["cache_hits"] == 0  # not the checkpoint's own features
    # Asking for the checkpoint's own readout is the plain probe, from the plain probe's cache.
    same = run_probe_cli(tiny_run, tmp_path / "same.json", "--readout-bins", "2", "--readout-whole")
    assert same["cache_hits"] == 2 and same["top1"] == base["top1"]
    ri = run_probe_cli(tiny_run, tmp_path / "ri.json", "--random-init", "--readout", "a", "--readout-pool", "max",
                       "--no-readout-whole")  # fmt: skip
    assert ri["readout"] == {"readout": "a", "readout_bins": 2, "readout_whole": False, "readout_trend": False,
                             "readout_pool": "max", "readout_warmup": 0,
                             "readout_reverse": False}  # fmt: skip
    trend = run_probe_cli(tiny_run, tmp_path / "trend.json", "--readout-trend")
    assert trend["readout"]["readout_trend"] is True and trend["cache_hits"] == 0
    warm = run_probe_cli(tiny_run, tmp_path / "warm.json", "--readout-warmup", "3")
    assert warm["readout"]["readout_warmup"] == 3 and warm["cache_hits"] == 0


@pytest.mark.parametrize("opt", ["--readout-whole", "--readout-trend"])
def test_a_bin_option_with_one_bin_is_refused_not_ignored(tiny_run, tmp_path, capsys, opt):
    """--readout-whole / --readout-trend shape the bins; with one bin they would change nothing, silently."""
    common = ["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--data", "synthetic:shapes:direction",
              "--out", str(tmp_path / "x.json"), opt]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*common, "--readout-bins", "1"])
    assert e.value.code == 2
    assert f"{opt}: needs --readout-bins 2 or more (got --readout-bins 1)" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_readout_options_reach_extract_features(tiny_run):
    import torch
    from prednet2.eval.common import load_or_exit
    from prednet2.eval.featureset import readout_config

    class Args:
        readout, readout_bins, readout_whole, readout_trend, readout_pool, baseline = "a", 3, None, None, None, None

    loaded = load_or_exit(str(tiny_run / "checkpoints" / "last.pt"))
    cfg, changed = readout_config(Args(), loaded)
    assert changed == {"readout": "a", "readout_bins": 3} and cfg.model.readout_bins == 3
    feats = loaded.model.extract_features(torch.rand(2, 6, 3, 32, 32))
    assert feats[0].shape == (2, 4 * (1 + 3))  # layer 0: 4 channels of a, the whole clip and 3 time bins


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--readout", "a,zz"], "--readout a,zz: model.readout"),
        (["--readout", "a,r,a"], "--readout a,r,a: model.readout: 'a,r,a' names a twice"),
        (["--readout-bins", "0"], "--readout-bins 0"),
        (["--readout-bins", "2", "--baseline", "pixels"], "--readout-bins: the readout is what the model's features"),
    ],
)
def test_bad_readout_options_exit_2_with_one_line(tiny_run, tmp_path, capsys, argv, needle):
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), *SMALL, *argv, "--out", str(tmp_path / "p")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_a_synthetic_generators_version_bump_misses_the_cache(tiny_run, tmp_path, monkeypatch):
    """Features cached from a generator's old clips are not read for its new ones."""
    from prednet2.datasets.shapes import ShapesDataset

    def hits(name):
        return run_probe_cli(tiny_run, tmp_path / name, "--cache-dir", str(tmp_path / "cache"))["cache_hits"]

    assert (hits("a.json"), hits("b.json")) == (0, 2)
    monkeypatch.setattr(ShapesDataset, "version", ShapesDataset.version + 1)
    assert (hits("c.json"), hits("d.json")) == (0, 2)


def test_a_class_missed_by_a_small_synthetic_draw_is_not_called_a_skipped_folder(tiny_run, tmp_path, capsys):
    # 8 directions, 10 train and 6 test clips: a class drawn in neither was reported as "class folder(s) X hold no
    # usable video (all skipped)", of a synthetic set that has no folder and skipped nothing.
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    argv = ["--data", "synthetic:shapes:direction", "--n-train", "10", "--n-test", "6", "--seeds", "1"]
    assert main(["--checkpoint", ckpt, *argv, "--device", "cpu", "--out", str(tmp_path / "p.json")]) == 0
    r = json.loads((tmp_path / "p.json").read_text())
    err = capsys.readouterr().err
    assert r["classes_without_videos"] and "folder" not in err and "skipped" not in err
    assert "drawn in none of the 10 train and 6 test clips (a larger --n-train / --n-test" in err
