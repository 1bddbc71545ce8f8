"""eval.video_level: spread clip starts, and per-video pooling averages exactly each video's clips."""

import numpy as np
import pytest
from prednet2.eval.video_level import pool_by_video, spread_clips, spread_starts, video_ids


def test_spread_starts():
    assert spread_starts(100, 10, 1) == [45]  # (100 - 10) // 2: the folder's centre clip
    assert spread_starts(100, 10, 3) == [15, 45, 75]
    assert spread_starts(5, 10, 3) == [0, 0, 0]  # shorter than a clip: padded clips, still N of them
    s = spread_starts(37, 6, 4)
    assert s == sorted(s) and s[0] >= 0 and s[-1] <= 37 - 6
    with pytest.raises(ValueError):
        spread_starts(10, 2, 0)


def test_pool_by_video_averages_the_right_clips():
    vids = np.array([2, 0, 2, 1, 0, 2])
    x = np.arange(12, dtype=np.float32).reshape(6, 2)  # row i = [2i, 2i+1]
    labels = np.array([7, 5, 7, 6, 5, 7])
    pooled, y, uniq = pool_by_video({"0": x, "1": x[:, :1]}, labels, vids)
    assert list(uniq) == [0, 1, 2] and list(y) == [5, 6, 7]
    np.testing.assert_allclose(pooled["0"][0], x[[1, 4]].mean(0))
    np.testing.assert_allclose(pooled["0"][1], x[3])
    np.testing.assert_allclose(pooled["0"][2], x[[0, 2, 5]].mean(0))
    np.testing.assert_allclose(pooled["1"][:, 0], pooled["0"][:, 0])
    with pytest.raises(ValueError, match="different labels"):
        pool_by_video({"0": x}, np.arange(6), vids)


class _Folder:
    """The attributes of a VideoFolder that spread_clips reads."""

    def __init__(self, lengths, span):
        self.videos = [f"v{i}" for i in range(len(lengths))]
        self._n = lengths
        self.span = span
        self.clips = [(v, 0) for v in range(len(lengths))]

    def num_frames(self, v):
        return self._n[v]


def test_spread_clips_reindexes_a_folder():
    ds = _Folder([30, 12, 4], span=6)
    spread_clips(ds, 2)
    assert ds.clips == [(0, 6), (0, 18), (1, 1), (1, 4), (2, 0), (2, 0)]
    assert list(video_ids(ds)) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="folders of videos"):
        spread_clips(object(), 2)


def test_probe_counts_videos_not_clips(tiny_run, labelled_videos, tmp_path, capsys):
    import json

    from prednet2.eval.linear_probe import main

    base = ["--checkpoint", str(tiny_run / "checkpoints" / "last.pt"), "--baseline", "pixels", "--seeds", "1",
            "--device", "cpu", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    assert (
        main([*base, "--data", str(labelled_videos), "--clips-per-video", "3", "--out", str(tmp_path / "p.json")]) == 0
    )
    r = json.loads((tmp_path / "p.json").read_text())
    assert r["n_train"] + r["n_test"] == 12 and r["clips_per_video"] == 3  # 36 clips, 12 videos
    assert "3 clips per video" not in r["features"]  # pixels: the description is the pixel pooling
    with pytest.raises(SystemExit) as e:
        main([*base, "--data", "synthetic:shapes:direction", "--clips-per-video", "2", "--n-train", "16",
              "--n-test", "8", "--out", str(tmp_path / "s.json")])  # fmt: skip
    assert e.value.code == 2 and "synthetic sets have one clip per video" in capsys.readouterr().err
