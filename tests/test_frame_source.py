"""prednet2.frame_source (through prednet2.stream): files and folders, display rotation, unreadable files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from stream_helpers import write_video

from prednet2.stream import FrameSource, SourceError


def test_frame_source_file_and_folder(tmp_path):
    a = write_video(tmp_path / "b.mp4", 5, seed=1)
    write_video(tmp_path / "a.mp4", 7, seed=2)
    src = FrameSource(str(tmp_path / "b.mp4"), size=(16, 24))
    frames = list(src)
    assert len(frames) == 5 and frames[0].shape == (16, 24, 3) and frames[0].dtype == np.uint8
    # Shorter-side resize + centre crop: the bright square (rows 10:26 of 48) lands in rows ~3:9 of 16.
    assert frames[0][5, :].max() > 150 and frames[0][14, :].max() < 120
    assert abs(src.fps - 10) < 1e-6
    # A folder plays its videos in sorted order: a.mp4 (7 frames) first, then b.mp4 (5).
    folder = list(FrameSource(str(tmp_path), size=(16, 24), grayscale=True))
    assert len(folder) == 12 and folder[0].shape == (16, 24, 1)
    np.testing.assert_array_equal(folder[7][..., 0], list(FrameSource(str(tmp_path / "b.mp4"), size=(16, 24),
                                                                        grayscale=True))[0][..., 0])  # fmt: skip
    assert a.shape[0] == 5


def test_frame_source_turns_a_phone_video_upright(tmp_path):
    # Stored landscape with a display matrix (a phone held upright): streamed frames are portrait, as the training
    # data's decoder reads them, with the square (stored rows 10:26, moving right) right of centre, moving down.
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")
    from prednet2.datasets.decode import decode_video

    write_video(tmp_path / "phone.mp4", 5, rotation=-90)
    frames = np.stack(list(FrameSource(str(tmp_path / "phone.mp4"), size=(40, 24))))
    assert frames.shape == (5, 40, 24, 3)
    rows = frames[..., 1].max(axis=2) > 150  # (T, H): which rows the square covers in each frame
    cols = frames[..., 1].max(axis=1) > 150  # (T, W)
    # stored rows 10:26 of 48 become columns 22:38 of 48 counted from the left (the stored top is on the right),
    # 11:19 of 24 here; turned the other way they would be 5:13
    assert cols[:, 12:18].all() and not cols[:, :10].any()
    first_row = [int(np.argmax(r)) for r in rows]
    assert first_row == sorted(first_row) and first_row[-1] > first_row[0]  # moving right stored, down as shown
    decoded = decode_video(tmp_path / "phone.mp4", size=(40, 24)).frames
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 8  # the two readers agree (scalers differ)


def test_frame_source_errors(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        FrameSource(str(tmp_path / "missing.mp4"), size=(16, 16))
    with pytest.raises(SourceError, match="no video files"):
        FrameSource(str(tmp_path), size=(16, 16))
    with pytest.raises(SourceError, match="SOURCE is empty; give a video file"):  # not the working folder
        FrameSource("", size=(16, 16))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="not a readable video"):
        FrameSource(str(bad), size=(16, 16))
    # A folder plays from its first readable video (an unreadable one sorted first is skipped); with none: an error.
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.mp4").write_bytes(b"")
    write_video(tmp_path / "d" / "b.mp4", 5)
    src = FrameSource(str(tmp_path / "d"), size=(16, 16))
    assert len(list(src)) == 5 and [p for p, _ in src.skipped] == [str(tmp_path / "d" / "a.mp4")]
    (tmp_path / "d" / "b.mp4").write_bytes(b"not a video either")
    with pytest.raises(SourceError, match="none of its 2 video files is readable"):
        FrameSource(str(tmp_path / "d"), size=(16, 16))
    # After a good file: one that opens but is cut before its first frame (index first, data cut), and one that is
    # not a container. Both are counted, with plain reasons (not FFmpeg's "[Errno 1094995529]").
    (tmp_path / "e").mkdir()
    good = write_video(tmp_path / "e" / "a.mp4", 5)
    write_video(tmp_path / "full.mp4", 5, faststart=True)
    data = (tmp_path / "full.mp4").read_bytes()
    (tmp_path / "e" / "b.mp4").write_bytes(data[: data.find(b"mdat") + 8])
    (tmp_path / "e" / "c.mp4").write_bytes(b"text, not a video")
    src = FrameSource(str(tmp_path / "e"), size=(16, 16))
    assert len(list(src)) == len(good)
    reasons = {Path(p).name: r for p, r in src.skipped}
    assert set(reasons) == {"b.mp4", "c.mp4"} and all("Errno" not in r for r in reasons.values()), reasons
    assert "before any frame" in reasons["b.mp4"] and "not a readable video container" in reasons["c.mp4"], reasons
    # An empty file and a broken link say so, as the training data's scan does (not "not a readable container")
    (tmp_path / "e" / "d.mp4").write_bytes(b"")
    (tmp_path / "e" / "f.mp4").symlink_to(tmp_path / "nowhere.mp4")
    src = FrameSource(str(tmp_path / "e"), size=(16, 16))
    list(src)
    reasons = {Path(p).name: r for p, r in src.skipped}
    assert reasons["d.mp4"] == "empty file (0 bytes)" and "broken link" in reasons["f.mp4"], reasons
    # No camera on this machine: the v4l2 path must fail with a clear message, not a traceback.
    with pytest.raises(SourceError, match="cannot open camera /dev/video57"):
        FrameSource("57", size=(16, 16))


def _noise_video(path, n: int) -> None:
    """n frames of noise (every frame about as big, so a byte cut lands mid-video), index first in an mp4."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.random.default_rng(4).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    with av.open(str(path), "w", options={"movflags": "faststart"} if path.suffix == ".mp4" else {}) as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt, s.bit_rate = 32, 32, "yuv420p", 4_000_000
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


@pytest.mark.parametrize("name", ["cut.mp4", "cut.mkv"])
def test_a_video_cut_short_plays_up_to_the_cut_and_is_listed(tmp_path, capsys, name):
    # A cut mp4 (index first) ends in a packet marked corrupt, a cut mkv short of its declared duration; neither
    # raises with FFmpeg's frame threads on. Both play their frames, then are listed as truncated (not skipped).
    (tmp_path / "d").mkdir()
    write_video(tmp_path / "d" / "a.mp4", 5)
    _noise_video(tmp_path / "full" / name, 40)
    data = (tmp_path / "full" / name).read_bytes()
    (tmp_path / "d" / name).write_bytes(data[: int(len(data) * 0.6)])
    src = FrameSource(str(tmp_path / "d"), size=(16, 16))
    n = len(list(src)) - 5
    assert 5 <= n < 40 and src.truncated == [(str(tmp_path / "d" / name), n)] and src.skipped == []
    assert f"{name}: cut short or damaged after {n} frames" in capsys.readouterr().err
    whole = FrameSource(str(tmp_path / "full"), size=(16, 16))
    assert len(list(whole)) == 40 and whole.truncated == [] and whole.skipped == []
