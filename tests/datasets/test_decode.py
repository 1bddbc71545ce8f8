from fractions import Fraction

import av
import numpy as np
import pytest
from prednet2.datasets.decode import decode_video, resize_plan, scan_videos
from prednet2.datasets.errors import DecodeError


@pytest.mark.parametrize("codec,ext", [("ffv1", "mkv"), ("libx264rgb", "mkv")])
def test_lossless_exact_frames(vt, tmp_path, codec, ext):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} not in this PyAV build")
    truth = np.random.default_rng(0).integers(0, 256, (5, 12, 20, 3), dtype=np.uint8)
    p = vt.write_video(tmp_path / f"v.{ext}", truth, codec=codec)
    d = decode_video(p, size=(12, 20))
    assert d.frames.dtype == np.uint8 and d.frames.shape == (5, 12, 20, 3)
    np.testing.assert_array_equal(d.frames, truth)
    assert d.fps == pytest.approx(10) and not d.truncated


def test_lossy_within_tolerance(vt, tmp_path):
    truth = vt.coded_frames(6, 32, 32)
    d = decode_video(vt.write_video(tmp_path / "v.mp4", truth, codec="mpeg4"), size=(32, 32))
    assert d.frames.shape == truth.shape
    assert np.abs(d.frames.astype(int) - truth).mean() < 6
    vid, idx = vt.decode_id(d.frames)
    assert idx.tolist() == list(range(6))


def test_resize_shorter_side_then_centre_crop(vt, tmp_path):
    # 16x48 frame: left third red, middle green, right blue. To 8x8: scale 0.5 -> 8x24, centre crop keeps green.
    f = np.zeros((2, 16, 48, 3), np.uint8)
    f[:, :, :16, 0] = 255
    f[:, :, 16:32, 1] = 255
    f[:, :, 32:, 2] = 255
    d = decode_video(vt.write_video(tmp_path / "wide.mkv", f), size=(8, 8))
    assert d.frames.shape == (2, 8, 8, 3)
    assert d.frames[..., 1].mean() > 240 and d.frames[..., [0, 2]].mean() < 15
    assert resize_plan(16, 48, (8, 8)) == (8, 24, 0, 8)
    assert resize_plan(1080, 1920, (64, 64)) == (64, 114, 0, 25)


def test_grayscale(vt, tmp_path):
    f = np.full((3, 8, 8, 3), 128, np.uint8)
    d = decode_video(vt.write_video(tmp_path / "g.mkv", f), size=(8, 8), grayscale=True)
    assert d.frames.shape == (3, 8, 8, 1)
    assert abs(int(d.frames.mean()) - 128) <= 3


def test_fps_normalisation_same_duration(vt, tmp_path):
    # 1 s at 30 fps and 1 s at 10 fps; asking for 10 fps gives 10 frames each, 30 fps gives 30 each.
    fast = vt.write_video(tmp_path / "fast.mkv", vt.coded_frames(30, 8, 8), fps=30)
    slow = vt.write_video(tmp_path / "slow.mkv", vt.coded_frames(10, 8, 8), fps=10)
    for fps in (10, 5, 30):
        a = decode_video(fast, size=(8, 8), fps=fps).frames
        b = decode_video(slow, size=(8, 8), fps=fps).frames
        assert len(a) == len(b) == fps
    _, idx = vt.decode_id(decode_video(fast, size=(8, 8), fps=10).frames)
    assert idx.tolist() == list(range(0, 30, 3))  # every 3rd source frame
    _, idx = vt.decode_id(decode_video(slow, size=(8, 8), fps=30).frames)
    assert idx.tolist() == [i for i in range(10) for _ in range(3)]  # each source frame held 3 times
    assert len(decode_video(fast, size=(8, 8)).frames) == 30  # fps=0: native


def test_seek_start_duration(vt, tmp_path):
    p = vt.write_video(tmp_path / "s.mkv", vt.coded_frames(20, 8, 8), fps=10)
    d = decode_video(p, size=(8, 8), start=1.0, duration=0.5)
    _, idx = vt.decode_id(d.frames)
    assert idx.tolist() == [10, 11, 12, 13, 14]


def test_bad_files_give_reasons(vt, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("hello\n" * 50)
    vt.write_truncated_mp4(tmp_path / "cut.mp4")
    vt.write_audio_only(tmp_path / "audio.mkv")
    expect = {"empty.mp4": "empty file", "text.mp4": "not a readable", "cut.mp4": "truncated or corrupt"}
    expect["audio.mkv"] = "no video stream"
    for name, words in expect.items():
        with pytest.raises(DecodeError) as e:
            decode_video(tmp_path / name, size=(8, 8))
        assert words in e.value.reason and name in str(e.value)


def test_zero_frame_video(vt, tmp_path):
    # An AVI with a video stream but no frames (FFmpeg refuses to even open such an mkv or mp4).
    p = vt.write_video(tmp_path / "zero.avi", np.zeros((0, 8, 8, 3), np.uint8), codec="mpeg4")
    with pytest.raises(DecodeError, match="no decodable video frames"):
        decode_video(p, size=(8, 8))


def test_truncated_but_decodable_keeps_frames(vt, tmp_path):
    p = vt.write_video(tmp_path / "t.mkv", np.random.default_rng(1).integers(0, 256, (20, 16, 16, 3), dtype=np.uint8))
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    d = decode_video(p, size=(16, 16))
    assert 5 <= len(d.frames) < 20 and d.truncated


@pytest.mark.parametrize(
    "name,codec",
    [("v.mkv", "ffv1"), ("v.avi", "mpeg4"), ("v.mkv", "mpeg4")],  # cut mkv: short of its duration; avi: a bad packet
)
@pytest.mark.parametrize("fps", [0.0, 5.0])
def test_a_file_cut_short_is_flagged_and_a_whole_one_is_not(vt, tmp_path, name, codec, fps):
    # FFmpeg's frame threads swallow the decode error of a cut file, and a cut mkv ends with no error at all: each
    # must still come back flagged, with the frames before the cut; the same file whole must not.
    frames = np.random.default_rng(2).integers(0, 256, (40, 32, 32, 3), dtype=np.uint8)
    p = vt.write_video(tmp_path / name, frames, codec=codec)
    whole = decode_video(p, size=(32, 32), fps=fps)
    assert not whole.truncated and len(whole.frames) == (40 if fps == 0 else 20)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    cut = decode_video(p, size=(32, 32), fps=fps)
    assert cut.truncated and 5 <= len(cut.frames) < len(whole.frames)


def test_a_window_that_ends_before_the_cut_is_not_flagged(vt, tmp_path):
    # Decoding [0, 1 s) of a 4-s file cut at 60 %: the window is whole, so nothing is reported (the duration check
    # applies only when decoding to the end).
    frames = np.random.default_rng(3).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)
    p = vt.write_video(tmp_path / "w.mkv", frames)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    d = decode_video(p, size=(16, 16), duration=1.0)
    assert len(d.frames) == 10 and not d.truncated


def test_short_of_the_declared_duration_needs_both_margins():
    from types import SimpleNamespace as NS

    from prednet2.datasets.decode import ends_short

    s = NS(duration=100, time_base=Fraction(1, 10))  # a 10-s video stream
    assert not ends_short(s, None, last_t=9.4, native=10)  # 0.5 s missing: under 5 % of 10 s
    assert ends_short(s, None, last_t=9.3, native=10)  # 0.6 s: over both
    long = NS(duration=1000, time_base=Fraction(1, 10))  # 100 s: 5 % is 5 s
    assert not ends_short(long, None, last_t=96.0, native=10) and ends_short(long, None, last_t=94.0, native=10)
    bare = NS(duration=None, time_base=None)  # a stream that declares no duration of its own
    assert not ends_short(bare, NS(duration=None), last_t=1.0, native=10)  # none declared anywhere
    assert ends_short(bare, NS(duration=4_000_000), last_t=1.0, native=10)  # the container's 4 s (in microseconds)


def test_scan_recursive_sorted_case_insensitive(vt, tmp_path):
    for rel in ["b/x.MP4", "a/ü y.webm", "a/z.txt", "c.Avi", "a/.prednet2_cache/k.mp4", "m.mov", "n.m4v"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    got = [p.relative_to(tmp_path).as_posix() for p in scan_videos(tmp_path)]
    assert got == ["a/ü y.webm", "b/x.MP4", "c.Avi", "m.mov", "n.m4v"]


@pytest.mark.parametrize("rotation,white", [(-90, "top"), (90, "bottom"), (180, "right"), (0, "left")])
def test_display_rotation_turns_frames_upright(vt, tmp_path, rotation, white):
    # A phone filming upright stores landscape pixels and a display matrix; the frames must come back as shown.
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip("this PyAV cannot write a display matrix")
    f = np.zeros((3, 16, 32, 3), np.uint8)
    f[:, :, :8] = 255  # the stored frame's left quarter is white
    p = vt.write_video(tmp_path / "phone.mp4", f, codec="mpeg4", rotation=rotation)
    shown = (32, 16) if rotation in (90, -90) else (16, 32)
    d = decode_video(p, size=shown)
    assert d.frames.shape == (3, *shown, 3)
    g = d.frames[0, ..., 1].astype(float)
    part = {"top": g[:8], "bottom": g[-8:], "left": g[:, :8], "right": g[:, -8:]}[white]
    assert part.mean() > 200 and (g.sum() - part.sum()) / (g.size - part.size) < 40
    # a wide target scales the upright frame by its width: a portrait video fills 16 wide by 32 tall, then the
    # centre 8 rows are kept (dark for -90 and 90, whose white quarter is at the top or bottom)
    wide = decode_video(p, size=(8, 16)).frames[0, ..., 1].astype(float)
    assert wide.shape == (8, 16) and (wide.mean() < 40) == (rotation in (90, -90))
