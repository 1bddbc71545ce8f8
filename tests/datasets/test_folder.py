import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from prednet2.datasets.errors import CutVideo, DataError, SkippedFile
from prednet2.datasets.folder import VideoFolder
from torch.utils.data import DataLoader

from prednet2.config import DataConfig

SMOKE = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "smoke"


@pytest.fixture
def three_videos(vt, tmp_path):
    root = tmp_path / "three"
    for v, n in enumerate([9, 14, 6]):
        vt.write_video(root / f"sub{v % 2}" / f"v{v}.mkv", vt.coded_frames(n, 8, 8, video_id=v + 1))
    return root


def test_items_and_clip_index(three_videos, tmp_path):
    ds = VideoFolder(three_videos, clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    assert [Path(v).name for v in ds.videos] == ["v0.mkv", "v2.mkv", "v1.mkv"]  # sorted by relative path
    assert ds.clips == [(0, 0), (0, 4), (1, 0), (2, 0), (2, 4), (2, 8)]  # non-overlapping by default
    item = ds[3]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (4, 3, 8, 8)
    assert item["label"].dtype == torch.int64 and item["label"].item() == -1 and item["index"] == 3
    assert ds.frames(2).shape == (14, 8, 8, 3) and ds.frames(2).dtype == np.uint8
    assert isinstance(ds.cache_key(0), str) and ds.n_skipped == 0


@pytest.mark.parametrize("clip_len,stride,step", [(3, 1, 1), (3, 2, 1), (2, 3, 2), (5, 1, 0)])
def test_clips_never_cross_boundaries(vt, three_videos, tmp_path, clip_len, stride, step):
    ds = VideoFolder(
        three_videos,
        clip_len=clip_len,
        stride=stride,
        clip_step=step,
        size=(8, 8),
        cache_dir=tmp_path / "c",
        progress=False,
    )
    span = (clip_len - 1) * stride + 1
    n = [9, 6, 14]  # frames of ds.videos in order
    assert len(ds) == sum(len(range(0, m - span + 1, step or span)) for m in n)
    for i in range(len(ds)):
        frames = ds[i]["video"].permute(0, 2, 3, 1).numpy()  # (T, H, W, C)
        vid, idx = vt.decode_id(frames)
        assert len(set(vid.tolist())) == 1  # one video per clip
        assert np.all(np.diff(idx) == stride) and idx[-1] < n[ds.clips[i][0]]


def test_dataconfig_and_keyword_overrides(three_videos, tmp_path):
    cfg = DataConfig(clip_len=3, stride=2, size=(8, 8), cache_dir=str(tmp_path / "c"))
    ds = VideoFolder(three_videos, cfg, progress=False)
    assert (ds.clip_len, ds.stride, ds.size, ds.cache_dir) == (3, 2, (8, 8), tmp_path / "c")
    ds = VideoFolder(three_videos, cfg, clip_len=5, progress=False)
    assert ds.clip_len == 5 and ds.n_skipped == 1  # 5 frames at stride 2 span 9: the 6-frame video is too short


def test_short_videos_skipped_or_padded(vt, three_videos, tmp_path):
    kw = dict(clip_len=8, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    ds = VideoFolder(three_videos, **kw)
    assert ds.n_skipped == 1 and "too short: 6 frames" in ds.skipped[0].reason
    ds = VideoFolder(three_videos, pad_short=True, clips_per_video="centre", **kw)
    assert ds.n_skipped == 0 and len(ds) == 3
    short = [i for i, (v, _) in enumerate(ds.clips) if ds.num_frames(v) == 6][0]
    _, idx = vt.decode_id(ds[short]["video"].permute(0, 2, 3, 1).numpy())
    assert idx.tolist() == [0, 1, 2, 3, 4, 5, 5, 5]  # last frame repeated
    centre = [i for i, (v, _) in enumerate(ds.clips) if ds.num_frames(v) == 14][0]
    assert ds.clips[centre][1] == 3  # (14 - 8) // 2


def test_grayscale_items_are_writable_copies_not_the_cache(three_videos, tmp_path, recwarn):
    # One channel made the (T, H, W, 1) -> (T, 1, H, W) transpose contiguous, so the item was the read-only memmap
    # itself: torch warned "The given NumPy array is not writable" in every grayscale run and probe.
    ds = VideoFolder(three_videos, clip_len=4, size=(8, 8), grayscale=True, cache_dir=tmp_path / "c", progress=False)
    item = ds[0]["video"]
    assert item.shape == (4, 1, 8, 8) and not [w for w in recwarn if "not writable" in str(w.message)]
    item.fill_(7)  # a copy: the cached frames are untouched
    assert not (ds.frames(0)[:4] == 7).all()


def test_all_too_short_names_the_clip_len_that_fits(three_videos, tmp_path):
    kw = dict(size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(DataError, match=r"all 3 .* the longest of them has 14 frames: give data.clip_len=14 or less"):
        VideoFolder(three_videos, clip_len=20, **kw)
    hint = r"give data.clip_len=7 or less \(train: --set data.clip_len=7; eval commands: --clip-len 7\)$"
    with pytest.raises(DataError, match=r"has 14 frames: " + hint):
        VideoFolder(three_videos, clip_len=20, stride=2, **kw)  # 7 frames two apart span 13 of the 14
    VideoFolder(three_videos, clip_len=7, stride=2, **kw)  # the hint's value works: the 14-frame video is used
    # A stride wider than every video: the hint was "too few for a clip of 2 (data.clip_len >= 2)" for 14 frames
    with pytest.raises(
        DataError, match=r"has 14 frames, too few for 2 frames 30 apart \(data.stride=30\): give data.stride=4 or less$"
    ):
        VideoFolder(three_videos, clip_len=4, stride=30, **kw)
    VideoFolder(three_videos, clip_len=4, stride=4, **kw)  # 4 frames four apart span 13 of the 14
    with pytest.raises(DataError, match=r"give data.stride=1 and data.clip_len=14 or less$"):
        VideoFolder(three_videos, clip_len=20, stride=30, **kw)


def test_many_skipped_files_warn_in_a_few_lines(vt, tmp_path, caplog):
    root = tmp_path / "many"
    for v in range(13):
        vt.write_video(root / f"s{v:02d}.mkv", vt.coded_frames(3, 8, 8, video_id=v + 1))
    vt.write_video(root / "long.mkv", vt.coded_frames(8, 8, 8, video_id=20))
    with caplog.at_level(logging.WARNING, logger="prednet2.datasets"):
        ds = VideoFolder(root, clip_len=5, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    assert ds.n_skipped == 13 and len(ds.videos) == 1  # every skip counted ...
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 11 and sum(w.startswith("skipping ") for w in warned) == 10  # ... ten named, one line more
    assert warned[-1].startswith("... and 3 more skipped") and "prednet2 inspect" in warned[-1]


def test_padded_videos_are_reported_once(three_videos, tmp_path, caplog):
    kw = dict(size=(8, 8), cache_dir=tmp_path / "c", progress=False, pad_short=True)
    with caplog.at_level(logging.WARNING, logger="prednet2.datasets"):
        VideoFolder(three_videos, clip_len=10, **kw)
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 1 and warned[0].startswith("2 of 3 videos in ")  # the 6- and 9-frame ones
    assert "the shortest has 6" in warned[0] and warned[0].endswith("fits them all is 6 (eval commands: --clip-len 6)")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prednet2.datasets"):
        VideoFolder(three_videos, clip_len=6, **kw)  # every video holds a clip: nothing to say
    assert not caplog.records


def test_mixed_folder_reports_bad_files(mixed_folder, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="prednet2.datasets"):
        ds = VideoFolder(mixed_folder, clip_len=4, size=(16, 16), cache_dir=tmp_path / "c", progress=False)
    assert len(ds.videos) == 1 and "good sub ü/good clip.mp4" in ds.videos[0]
    assert ds.n_skipped == 3 and all(isinstance(s, SkippedFile) for s in ds.skipped)
    reasons = {Path(s.path).name: s.reason for s in ds.skipped}
    assert set(reasons) == {"cut.mp4", "empty.mp4", "notes.mp4"}
    assert "empty" in reasons["empty.mp4"] and "not a readable video" in reasons["notes.mp4"]
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 3 and all(any(name in w for w in warned) for name in reasons)  # one line per file
    assert len(ds) == 3 and ds[2]["video"].shape == (4, 3, 16, 16)


def test_two_frame_video_is_too_short(vt, mixed_folder, tmp_path):
    vt.write_video(mixed_folder / "two.mkv", vt.coded_frames(2, 8, 8))
    ds = VideoFolder(mixed_folder, clip_len=4, size=(16, 16), cache_dir=tmp_path / "c", progress=False)
    assert ds.n_skipped == 4 and "too short: 2 frames" in dict(ds.skipped)[str(mixed_folder / "two.mkv")]


def test_errors_name_the_folder(vt, tmp_path):
    with pytest.raises(DataError, match="not found: .*nope"):
        VideoFolder(tmp_path / "nope", cache_dir=tmp_path / "c")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="no video files .* found under .*txt"):
        VideoFolder(tmp_path / "txt", cache_dir=tmp_path / "c")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "e.mp4").write_bytes(b"")
    with pytest.raises(DataError, match=r"no usable video in .*bad.*e\.mp4: empty file") as e:
        VideoFolder(bad, cache_dir=tmp_path / "c", progress=False)
    assert len(e.value.skipped) == 1
    with pytest.raises(DataError, match="clips_per_video"):
        VideoFolder(bad, cache_dir=tmp_path / "c", clips_per_video="middle")


def test_dataloader_workers(three_videos, tmp_path):
    ds = VideoFolder(three_videos, clip_len=3, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    ds.frames(0)  # a memmap opened in the parent must not be shared with workers
    direct = torch.stack([ds[i]["video"] for i in range(len(ds))])
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batches = list(loader)
    got = torch.cat([b["video"] for b in batches])
    assert got.shape == (len(ds), 3, 3, 8, 8)  # (B, T, C, H, W)
    assert torch.equal(got, direct)
    assert torch.cat([b["index"] for b in batches]).tolist() == list(range(len(ds)))


@pytest.mark.slow
@pytest.mark.skipif(not SMOKE.is_dir(), reason="../shared/data/smoke not present")
def test_smoke_folder_loads_completely(tmp_path):
    ds = VideoFolder(SMOKE, size=(64, 64), cache_dir=tmp_path / "c", progress=False)
    assert len(ds.videos) == 11 and ds.n_skipped == 0
    assert ds[len(ds) - 1]["video"].shape == (DataConfig().clip_len, 3, 64, 64)  # the default clip length


def test_truncated_file_keeps_decodable_frames(vt, tmp_path):
    frames = np.random.default_rng(1).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8)
    p = vt.write_video(tmp_path / "t" / "cut.mkv", frames)  # lossless
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    ds = VideoFolder(p.parent, clip_len=4, size=(16, 16), cache_dir=tmp_path / "c", progress=False)
    n = ds.num_frames(0)
    assert 4 <= n < 20 and ds.truncated == [CutVideo(str(p), n)]  # no decode error, yet listed as cut
    np.testing.assert_array_equal(ds.frames(0), frames[:n])  # the frames before the cut, exactly
    with pytest.raises(DataError, match=rf"too short.*; the longest of them has {n} frames: give data.clip_len={n} or"):
        VideoFolder(p.parent, clip_len=n + 1, size=(16, 16), cache_dir=tmp_path / "c", progress=False)


def test_videos_cut_by_a_decode_error_are_listed_and_warned_in_a_few_lines(vt, tmp_path, caplog):
    root = tmp_path / "broken"
    for i in range(12):
        vt.write_broken_mp4(root / f"b{i:02d}.mp4")
    with caplog.at_level(logging.WARNING, logger="prednet2.datasets"):
        ds = VideoFolder(root, clip_len=4, size=(16, 16), cache_dir=tmp_path / "c", progress=False)
    assert len(ds.videos) == 12 and ds.n_skipped == 0  # used, up to the error ...
    assert [Path(t.path).name for t in ds.truncated] == [f"b{i:02d}.mp4" for i in range(12)]  # ... and listed
    assert all(t.frames == ds.num_frames(i) < 24 for i, t in enumerate(ds.truncated))
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 11 and warned[-1].startswith("... and 2 more truncated")  # ten named, one line more
