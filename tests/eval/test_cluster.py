"""eval.cluster: NMI/ARI of k-means against labels; a perfect clustering scores 1; CLI on a PyAV folder."""

import json

import numpy as np
import pytest
from prednet2.eval.cluster import cluster_scores, kmeans_labels, main
from prednet2.eval.embed import main as embed_main


def test_perfect_clustering_scores_one_and_random_about_zero():
    y = np.repeat(np.arange(4), 25)
    perfect = cluster_scores(y, (y + 2) % 4)  # renamed clusters are still perfect
    assert perfect["nmi"] == pytest.approx(1.0) and perfect["ari"] == pytest.approx(1.0) and perfect["purity"] == 1
    rand = cluster_scores(y, np.random.default_rng(0).integers(0, 4, 100))
    assert rand["nmi"] < 0.1 and abs(rand["ari"]) < 0.1


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 5)) * 0.1 + np.eye(5)[y] * 3
    assert cluster_scores(y, kmeans_labels(x, 3, seed=0))["nmi"] == pytest.approx(1.0)


def test_cli_on_a_video_folder(tiny_run, labelled_videos, tmp_path, capsys):
    emb = tmp_path / "px.npz"
    assert embed_main(["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--data", str(labelled_videos),
                       "--out", str(emb), "--baseline", "pixels", "--device", "cpu"]) == 0  # fmt: skip
    out = tmp_path / "cluster.json"
    assert main([str(emb), "--out", str(out), "--seeds", "2", "--png-dir", str(tmp_path / "sheets")]) == 0
    r = json.loads(out.read_text())
    assert r["k"] == 3 and r["n_videos"] == 12 and r["variant"] == "pixels"
    assert r["nmi"] == pytest.approx(1.0) and r["ari"] == pytest.approx(1.0)  # colour classes: exact in pixels
    assert sorted(r["cluster_sizes"]) == [4, 4, 4]
    sheets = sorted((tmp_path / "sheets").glob("cluster_*.png"))
    assert len(sheets) == 3 and all(s.stat().st_size < 200_000 for s in sheets)
    with pytest.raises(SystemExit) as e:
        main([str(emb), "--out", str(tmp_path / "bad.json"), "--k", "99"])
    assert e.value.code == 2 and "--k 99" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # was read as "no --k": the number of classes, without a word
        main([str(emb), "--out", str(tmp_path / "bad.json"), "--k", "0"])
    assert e.value.code == 2 and "--k: 0: need at least 2" in capsys.readouterr().err
    # --png-dir that is a file: refused before any work, not a traceback after cluster.json was written
    with pytest.raises(SystemExit) as e:
        main([str(emb), "--out", str(tmp_path / "c2.json"), "--png-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 1 and f"--png-dir: {out} is a file, not a folder" in err[0]
    assert not (tmp_path / "c2.json").exists()
