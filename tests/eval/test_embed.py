"""eval.embed on a tiny PyAV-written folder: one row per video, paths, labels, per-clip rows."""

import numpy as np
import pytest
from prednet2.eval.embed import load_embeddings, main


@pytest.fixture(scope="module")
def emb_files(tiny_run, labelled_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("emb")
    ckpt = str(tiny_run / "checkpoints" / "last.pt")
    base = ["--checkpoint", ckpt, "--data", str(labelled_videos), "--device", "cpu"]
    assert main([*base, "--out", str(out / "emb.npz"), "--per-clip", "--clips-per-video", "3"]) == 0
    assert main([*base, "--out", str(out / "px.npz"), "--baseline", "pixels"]) == 0
    assert main([*base, "--out", str(out / "nl.npz"), "--no-labels", "--random-init"]) == 0
    return out


def test_one_row_per_video_with_paths_and_labels(emb_files, labelled_videos):
    e = load_embeddings(emb_files / "emb.npz")
    assert e.embedding.shape[0] == 12 and e.embedding.dtype == np.float32
    assert e.embedding.shape[1] == sum(e.meta["layers"].values())
    assert e.classes == ["blue", "green", "red"] and e.labelled
    for p, y in zip(e.paths, e.labels):
        assert p.startswith(str(labelled_videos)) and p.split("/")[-2] == e.classes[y]
    assert e.meta["variant"] == "trained" and e.meta["clips_per_video"] == 3
    # Per clip: 3 spread clips of every video, and the video row is their mean.
    assert e.clip_embedding.shape == (36, e.embedding.shape[1])
    assert np.array_equal(np.bincount(e.clip_video), [3] * 12)
    np.testing.assert_allclose(e.embedding[5], e.clip_embedding[e.clip_video == 5].mean(0), rtol=1e-5, atol=1e-6)
    starts = e.clip_start[e.clip_video == 0]
    assert len(set(starts.tolist())) == 3  # spread, not one clip repeated


def test_baselines_and_unlabelled(emb_files):
    px = load_embeddings(emb_files / "px.npz")
    assert px.meta["variant"] == "pixels" and px.embedding.shape == (12, 4 * 3 * 64) and px.clip_embedding is None
    nl = load_embeddings(emb_files / "nl.npz")
    assert nl.meta["variant"] == "random_init" and not nl.labelled and set(nl.labels.tolist()) == {-1}
    assert len(nl.paths) == 12


def test_bad_folder_exits_2(tiny_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--data", str(tmp_path / "nope"),
              "--out", str(tmp_path / "e.npz")])  # fmt: skip
    assert e.value.code == 2 and "nope" in capsys.readouterr().err


def test_a_video_file_as_the_folder_is_named_as_a_file(tiny_run, labelled_videos, tmp_path, capsys):
    video = next((labelled_videos / "red").glob("*.mkv"))
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tiny_run), "--data", str(video), "--out", str(tmp_path / "e.npz")])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and f"--data {video}: a file; give the folder of videos" in err and "no such" not in err


def test_a_corrupt_file_is_skipped_and_counted(tiny_run, videos_and_a_corrupt_file, tmp_path, capsys):
    out = tmp_path / "e.npz"
    argv = ["--checkpoint", str(tiny_run), "--data", str(videos_and_a_corrupt_file), "--baseline", "pixels"]
    assert main([*argv, "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    e = load_embeddings(out)
    assert len(e.paths) == 12 and e.meta["n_skipped"] == 1 and e.meta["skipped"][0]["path"].endswith("notes.mkv")
    assert "12 videos (12 clips)" in capsys.readouterr().out.replace("; 1 unusable file(s) skipped", "")


def test_an_added_or_edited_video_is_read_again_not_served_from_the_feature_cache(tiny_run, labelled_videos, tmp_path):
    # The feature cache was keyed on the folder's path: a video added since gave a traceback (12 cached rows for 13
    # videos), one replaced under another name gave the old video's features under the new path.
    import shutil

    root = tmp_path / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    argv = ["--checkpoint", str(tiny_run), "--data", str(root), "--cache-dir", str(tmp_path / "c"), "--no-progress"]

    def embed(name: str):
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        return load_embeddings(tmp_path / name)

    before = embed("a.npz")
    red = sorted((root / "red").glob("*.mkv"))
    shutil.copy(red[0], root / "red" / "added.mkv")
    assert len(embed("b.npz").paths) == 13
    (root / "red" / "added.mkv").unlink()
    shutil.copy(root / "blue" / sorted(p.name for p in (root / "blue").glob("*.mkv"))[0], red[0])  # same name
    after = embed("c.npz")
    i = list(after.paths).index(str(red[0]))
    assert list(after.paths) == list(before.paths) and not np.allclose(after.embedding[i], before.embedding[i])
    assert after.meta["cache_hits"] == 0 and embed("d.npz").meta["cache_hits"] == 1


def test_videos_beside_the_class_folders_are_named_not_dropped_silently(tiny_run, labelled_videos, tmp_path, capsys):
    # A folder with class sub-folders reads as labelled: videos directly in it have no class and were left out of
    # emb.npz without a word (eval.search then never found them).
    import shutil

    root = tmp_path / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    shutil.copy(next((root / "red").glob("*.mkv")), root / "loose.mkv")
    argv = ["--checkpoint", str(tiny_run), "--data", str(root), "--baseline", "pixels", "--no-progress"]
    assert main([*argv, "--out", str(tmp_path / "e.npz")]) == 0
    err = capsys.readouterr().err
    assert "1 video(s) directly in the folder (e.g. loose.mkv) are in no class folder and are left out" in err
    assert "--no-labels embeds every video" in err and len(load_embeddings(tmp_path / "e.npz").paths) == 12
    assert main([*argv, "--no-labels", "--out", str(tmp_path / "all.npz")]) == 0
    assert len(load_embeddings(tmp_path / "all.npz").paths) == 13 and "left out" not in capsys.readouterr().err


def test_out_not_named_npz_is_one_line(tiny_run, tmp_path, capsys):
    """--out e.json would hold an npz archive under a JSON name: refused before any work."""
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tiny_run), "--data", "synthetic:shapes", "--out", str(tmp_path / "e.json")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "e.json" in err and ".npz" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "e.json").exists()


def test_no_progress_silences_the_decode_bar(tiny_run, labelled_videos, tmp_path, capsys):
    """--no-progress: no tqdm bar while a fresh folder's videos decode, nor while its masks are made."""
    import shutil

    root = tmp_path / "videos"
    shutil.copytree(labelled_videos, root, ignore=shutil.ignore_patterns(".prednet2_cache"))
    argv = ["--checkpoint", str(tiny_run), "--data", str(root), "--out", str(tmp_path / "e.npz"), "--no-cache"]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "decoding videos" not in err and "it/s" not in err and "video/s" not in err, err


def test_a_labels_file_labels_the_rows_and_a_renamed_class_is_not_served_stale(tiny_run, labelled_videos, tmp_path):
    # labels.csv over the class folders' videos (its names, not the folders', are the classes). Renaming a class
    # reorders the sorted classes with the same videos and split: cached rows must not keep the old indices.
    vids = sorted(p.relative_to(labelled_videos).as_posix() for p in labelled_videos.rglob("*.mkv"))
    table = labelled_videos / "labels_test.csv"
    argv = ["--checkpoint", str(tiny_run), "--data", str(table), "--baseline", "pixels",
            "--cache-dir", str(tmp_path / "c"), "--no-progress"]  # fmt: skip

    def embed(rename: dict, name: str):
        cls = {v: v.split("/")[0] for v in vids}
        table.write_text("path,class\n" + "".join(f"{v},{rename.get(cls[v], cls[v])}\n" for v in vids))
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        e = load_embeddings(tmp_path / name)
        return e, {str(p).split("/")[-1]: e.classes[lab] for p, lab in zip(e.paths, e.labels, strict=True)}

    a, named = embed({}, "a.npz")
    assert a.classes == ["blue", "green", "red"] and all(n.startswith(c) for n, c in named.items())
    b, named = embed({"red": "amber"}, "b.npz")  # amber sorts first: every index moves
    assert b.classes == ["amber", "blue", "green"] and b.meta["cache_hits"] == 0
    assert all(c == ("amber" if n.startswith("red") else n[: len(c)]) for n, c in named.items())
    table.unlink()
    with pytest.raises(SystemExit):  # the table is gone: one line, exit 2
        main([*argv, "--out", str(tmp_path / "c.npz")])
