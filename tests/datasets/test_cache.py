import os
import threading

import numpy as np
import prednet2.datasets.cache as cache_mod
import prednet2.datasets.decode as decode_mod
import pytest
from prednet2.datasets import DataError
from prednet2.datasets.cache import FrameCache, resolve_cache_dir
from prednet2.datasets.folder import VideoFolder


@pytest.fixture
def folder(vt, tmp_path):
    root = tmp_path / "vids"
    for v in range(2):
        vt.write_video(root / f"v{v}.mkv", vt.coded_frames(12, 16, 16, video_id=v))
    return root


@pytest.fixture
def count_decodes(monkeypatch):
    """Counts calls of decode_video (the only function that opens a video)."""
    calls = []
    real = decode_mod.decode_video

    def counting(path, **kw):
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(decode_mod, "decode_video", counting)
    return calls


def _all_items(ds):
    return [ds[i]["video"].numpy() for i in range(len(ds))]


def test_second_pass_and_second_run_read_no_video(folder, tmp_path, count_decodes, monkeypatch):
    cache = tmp_path / "cache"
    ds = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    first = _all_items(ds)
    assert len(count_decodes) == 2
    second = _all_items(ds)  # a second epoch
    assert len(count_decodes) == 2

    def boom(*a, **k):
        raise AssertionError("decode_video called on a cache hit")

    monkeypatch.setattr(decode_mod, "decode_video", boom)
    ds2 = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)  # a second run
    third = _all_items(ds2)
    for a, b, c in zip(first, second, third, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # Without the scan index, the .npy files are still found (e.g. another process built them).
    for p in cache.glob("scan-*.json"):
        p.unlink()
    ds3 = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    assert len(ds3) == len(ds)


def test_invalidated_when_file_changes(vt, folder, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    ds = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    assert len(count_decodes) == 2 and ds.num_frames(0) == 12
    old_key = ds.cache_key(0)
    vt.write_video(folder / "v0.mkv", vt.coded_frames(20, 16, 16, video_id=5))  # new content, new size/mtime
    st = os.stat(folder / "v0.mkv")
    os.utime(folder / "v0.mkv", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    ds2 = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    assert count_decodes[2:] == [str(folder / "v0.mkv")]  # only the changed file decodes again
    assert ds2.num_frames(0) == 20 and ds2.cache_key(0) != old_key
    vid, _ = vt.decode_id(ds2.frames(0))
    assert set(vid.tolist()) == {5}
    assert len(list(cache.glob("v0-*.npy"))) == 1  # the stale frames were removed


def test_a_damaged_cache_file_is_decoded_again(folder, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    ds = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    want = _all_items(ds)
    (damaged,) = cache.glob("v0-*.npy")
    damaged.write_bytes(damaged.read_bytes()[:500])  # truncated: its header promises frames the file lacks
    ds2 = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    assert count_decodes[2:] == [str(folder / "v0.mkv")]  # only the damaged file decodes again
    for a, b in zip(want, _all_items(ds2), strict=True):
        np.testing.assert_array_equal(a, b)


def test_options_change_the_key(folder, tmp_path, count_decodes):
    cache = tmp_path / "cache"
    a = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    b = VideoFolder(folder, clip_len=4, size=(8, 8), cache_dir=cache, progress=False)
    c = VideoFolder(folder, clip_len=4, size=(16, 16), grayscale=True, cache_dir=cache, progress=False)
    assert len(count_decodes) == 6
    assert len({a.cache_key(0), b.cache_key(0), c.cache_key(0)}) == 3
    assert b.frames(0).shape == (12, 8, 8, 3) and c.frames(0).shape == (12, 16, 16, 1)


def test_concurrent_builders_are_safe(folder, tmp_path):
    cache = tmp_path / "cache"
    errors = []

    def build():
        try:
            VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=build) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not list(cache.glob(".*.tmp"))  # no temporary files left behind
    ds = VideoFolder(folder, clip_len=4, size=(16, 16), cache_dir=cache, progress=False)
    assert ds.frames(1).shape == (12, 16, 16, 3)


def test_skips_are_cached_too(vt, tmp_path, count_decodes):
    root = tmp_path / "d"
    vt.write_video(root / "ok.mkv", vt.coded_frames(8, 8, 8))
    (root / "bad.mp4").write_text("not a video")
    kw = dict(clip_len=4, size=(8, 8), cache_dir=tmp_path / "c", progress=False)
    VideoFolder(root, **kw)
    ds = VideoFolder(root, **kw)
    assert len(count_decodes) == 2 and ds.n_skipped == 1


def test_resolve_cache_dir(tmp_path, monkeypatch):
    assert resolve_cache_dir(tmp_path, tmp_path / "x") == tmp_path / "x"
    assert resolve_cache_dir(tmp_path) == tmp_path / ".prednet2_cache"
    # A read-only data folder (root can write anywhere, so simulate it) falls back to ~/.cache/prednet2.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    real = cache_mod._writable_dir
    monkeypatch.setattr(cache_mod, "_writable_dir", lambda p: ".prednet2_cache" not in str(p) and real(p))
    assert resolve_cache_dir(tmp_path / "ro") == tmp_path / "home" / ".cache" / "prednet2"


def test_resolve_cache_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("a file")
    for bad in (tmp_path / "f", tmp_path / "f" / "sub"):  # a file, and a folder that would be inside one
        with pytest.raises(DataError, match=f"cache folder {bad} .*give a writable folder"):
            resolve_cache_dir(tmp_path, bad)


def test_store_is_atomic_and_readable(tmp_path):
    c = FrameCache(tmp_path, size=(4, 4), fps=0, grayscale=False)
    frames = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    c.store("/x/y z.mp4", "k1", frames)
    np.testing.assert_array_equal(c.load("/x/y z.mp4", "k1"), frames)
    assert [p.name for p in tmp_path.iterdir()] == ["y_z-k1.npy"]


def test_index_keeps_other_scans(vt, tmp_path, count_decodes):
    # Two scans of one root over different file subsets (train/test of a labelled folder) share one index.
    root = tmp_path / "r"
    vt.write_video(root / "a.mkv", vt.coded_frames(6, 8, 8))
    (root / "bad.mp4").write_text("nope")
    cache = FrameCache(tmp_path / "c", size=(8, 8), fps=0, grayscale=False)
    cache.build(root, [root / "a.mkv"], progress=False)
    cache.build(root, [root / "bad.mp4"], progress=False)
    cache.build(root, [root / "a.mkv"], progress=False)
    e = cache.build(root, [root / "bad.mp4"], progress=False)
    assert len(count_decodes) == 2 and e[0].reason
