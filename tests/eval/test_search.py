"""eval.search: nearest neighbours in an emb.npz, query by path or by a new file, and the contact sheet."""

import numpy as np
import pytest
from prednet2.eval.embed import main as embed_main
from prednet2.eval.search import find_query, main, nearest, standardise_rows


@pytest.fixture(scope="module")
def pixel_emb(tiny_run, labelled_videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "px.npz"
    argv = ["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--data", str(labelled_videos),
            "--out", str(out), "--baseline", "pixels", "--device", "cpu"]  # fmt: skip
    assert embed_main(argv) == 0
    return out


def test_nearest_orders_by_cosine_distance_and_excludes_the_query():
    bank = np.array([[1.0, 0.0], [0.8, 0.2], [0.0, 1.0], [1.0, 0.01]])
    bank /= np.linalg.norm(bank, axis=1, keepdims=True)
    idx, dist = nearest(bank, bank[0], 2, exclude=0)
    assert list(idx) == [3, 1] and np.all(np.diff(dist) >= 0) and dist[0] < 1e-3
    idx, _ = nearest(bank, bank[0], 10)
    assert list(idx) == [0, 3, 1, 2]


def test_standardise_rows_uses_the_reference_statistics():
    x = np.random.default_rng(0).normal(size=(50, 3)) * [1, 10, 100] + [0, 5, -5]
    z = standardise_rows(x)
    assert np.allclose(np.linalg.norm(z, axis=1), 1.0)
    np.testing.assert_allclose(standardise_rows(x[:2], ref=x), z[:2])


def test_find_query():
    paths = np.array(["/d/a/v1.mp4", "/d/b/v1.mp4", "/d/b/v2.mp4"])
    assert find_query(paths, "b/v2.mp4") == 2 and find_query(paths, "/d/a/v1.mp4") == 0
    assert find_query(paths, "zz.mp4") is None
    with pytest.raises(ValueError, match="matches 2"):
        find_query(paths, "v1.mp4")


def test_search_prints_same_class_neighbours_and_draws(pixel_emb, labelled_videos, tmp_path, capsys):
    png = tmp_path / "sheet.png"
    assert main([str(pixel_emb), "--query", "green/green0.mkv", "-k", "3", "--png", str(png)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("query: green/green0.mkv [green]")
    hits = lines[1:4]
    assert len(hits) == 3 and all("[green]" in h for h in hits)  # colour separates classes in pixels
    assert all("green0.mkv" not in h for h in hits)  # the query is left out
    dists = [float(h.split()[1]) for h in hits]
    assert dists == sorted(dists)
    assert png.is_file() and png.stat().st_size < 200_000


def test_query_outside_the_file_is_embedded(pixel_emb, labelled_videos, tmp_path, capsys):
    import shutil

    outside = tmp_path / "new_red.mkv"
    shutil.copy(labelled_videos / "red" / "red1.mkv", outside)
    assert main([str(pixel_emb), "--query", str(outside), "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "embedded now" in out[0] and "red/red1.mkv" in out[1] and float(out[1].split()[1]) < 1e-4


def test_bad_query_exits_2(pixel_emb, capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        main([str(pixel_emb), "--query", "nope.mkv"])
    assert e.value.code == 2 and "nope.mkv" in capsys.readouterr().err
    # A file outside the embeddings that is not a video, or not a readable one: the line names --query and the file,
    # not the temporary folder the query would be embedded from.
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / "notes.mp4").write_text("not a video")
    (tmp_path / "clips").mkdir()
    for name, why in (
        ("notes.txt", "not a video file"),
        ("notes.mp4", "not a readable video container"),
        ("clips", "a folder; give one video file"),
    ):
        with pytest.raises(SystemExit) as e:
            main([str(pixel_emb), "--query", str(tmp_path / name)])
        err = capsys.readouterr().err.strip().splitlines()
        assert e.value.code == 2 and len(err) == 1 and f"--query {tmp_path / name}: {why}" in err[0], err


def test_query_too_short_for_a_clip_names_the_query(pixel_emb, tmp_path, capsys):
    """The file's clips are 6 frames: a 3-frame query is skipped by the pipeline; the line names --query and the
    file, not the temporary folder it is embedded from."""
    import av

    short = tmp_path / "short.mkv"
    with av.open(str(short), "w") as c:
        s = c.add_stream("ffv1", rate=10)
        s.height = s.width = 32
        for i in range(3):
            frame = np.full((32, 32, 3), 60 * i, np.uint8)
            for p in s.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with pytest.raises(SystemExit) as e:
        main([str(pixel_emb), "--query", str(short)])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line or "skipping" in line]
    assert e.value.code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert f"--query {short}: too short: 3 frames, a clip needs 6" in errors[0]
    assert errors[0].startswith("python -m eval.search: error:"), errors[0]  # not eval.embed's, parsed inside


@pytest.mark.parametrize("kind", ["npy", "text", "truncated"])
def test_an_embeddings_file_that_is_not_one_names_it(pixel_emb, tmp_path, capsys, kind):
    bad = tmp_path / f"bad.{kind}"
    if kind == "npy":
        np.save(bad, np.zeros((3, 4)))  # a bare array: np.load gives an ndarray, not an archive
    elif kind == "text":
        bad.write_text("video,label\n")
    else:
        bad.write_bytes(pixel_emb.read_bytes()[:600])
    with pytest.raises(SystemExit) as e:
        main([str(bad), "--query", "green/green0.mkv"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and f"{bad}: " in err[0] and "emb.npz" in err[0], err


def test_a_new_query_needs_the_weights_the_file_was_embedded_with(tiny_run, labelled_videos, tmp_path, capsys):
    """A video outside the file is embedded with the file's checkpoint: resumed since (another step), replaced by
    another architecture, or gone, it would be read by other weights (or fail to broadcast): one line, exit 2."""
    import shutil

    import torch

    from prednet2 import build_model
    from prednet2.checkpoint import save_checkpoint
    from prednet2.config import Config

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    ckpt, emb = run / "checkpoints" / "last.pt", tmp_path / "emb.npz"
    assert embed_main(["--checkpoint", str(ckpt), "--data", str(labelled_videos), "--out", str(emb)]) == 0
    query = tmp_path / "new.mkv"
    shutil.copy(labelled_videos / "red" / "red1.mkv", query)
    cfg = Config.from_dict({"model": {"channels": [4, 8]}, "data": {"size": [32, 32], "clip_len": 6},
                            "motion": {"enabled": False}})  # fmt: skip
    other = Config.from_dict({**cfg.to_dict(), "model": {"channels": [6, 8]}})
    torch.manual_seed(0)
    for c, step, said in [(cfg, 9, "is at step 9 now, but emb.npz was embedded from step 3"),
                          (other, 3, "now gives 126 features a video, emb.npz holds 108"),
                          (None, 3, "which is gone")]:  # fmt: skip
        if c is None:
            ckpt.unlink()
        else:
            save_checkpoint(ckpt, model=build_model(c.model), optimizer=None, config=c, step=step)
        with pytest.raises(SystemExit) as e:
            main([str(emb), "--query", str(query)])
        err = capsys.readouterr().err
        line = err.strip().replace("\r", "\n").split("\n")[-1]  # after the progress bars
        assert e.value.code == 2 and "Traceback" not in err and said in line, err
        assert line.startswith("python -m eval.search: error: --query") and "re-run eval.embed" in line
