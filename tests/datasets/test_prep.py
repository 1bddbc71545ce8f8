"""datasets.prep: per-video preparation on threads gives what one thread gives, in order, and fails as a loop."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
from prednet2.datasets import motion as M
from prednet2.datasets.folder import VideoFolder
from prednet2.datasets.prep import AUTO_MAX, ordered_map, prep_workers

from prednet2.config import DataConfig, MotionConfig


def test_ordered_map_keeps_the_order_and_uses_the_threads():
    seen = set()

    def slow_square(x):
        seen.add(threading.get_ident())
        time.sleep(0.02 * (5 - x))  # the first items finish last
        return x * x

    assert ordered_map(slow_square, range(5), workers=3, desc="t", progress=False) == [0, 1, 4, 9, 16]
    assert len(seen) > 1
    seen.clear()
    assert ordered_map(slow_square, [2], workers=3, desc="t", progress=False) == [4] and len(seen) == 1
    assert ordered_map(slow_square, [], workers=3, desc="t", progress=False) == []


@pytest.mark.parametrize("workers", [1, 3])
def test_ordered_map_raises_what_fn_raised(workers):
    def boom(x):
        if x == 2:
            raise ValueError("video 2 is bad")
        return x

    with pytest.raises(ValueError, match="video 2 is bad"):
        ordered_map(boom, range(5), workers=workers, desc="t", progress=False)


@pytest.mark.parametrize("how", ["raised", "ctrl-c"])
def test_an_error_or_ctrl_c_starts_no_more_items(how):
    import signal
    import threading

    started = []
    # Python's own Ctrl-C handler (a handler another test left behind would swallow it), and a real SIGINT sent to
    # the main thread, as a terminal sends it: it wakes the pool's wait at once (CI once saw _thread.interrupt_main's
    # flag, which wakes nothing, go unraised on a loaded machine)
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    main = threading.main_thread().ident

    def fn(x):
        started.append(x)
        if x == 0 and how == "raised":
            raise ValueError("video 0 is bad")
        if x == 0:
            time.sleep(0.2)  # every item is queued by now
            signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C arrives in the main thread, waiting for the pool
        time.sleep(0.05)
        return x

    try:
        with pytest.raises(ValueError if how == "raised" else KeyboardInterrupt):
            ordered_map(fn, range(40), workers=2, desc="t", progress=False)
    finally:
        signal.signal(signal.SIGINT, old)
    assert len(started) < 10  # not the 40: the waiting ones were dropped


def test_prep_workers_auto_and_given():
    import torch

    assert prep_workers(3) == 3
    assert 1 <= prep_workers(0) <= AUTO_MAX
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # a run held to one thread prepares on one
        assert prep_workers(0) == 1 and prep_workers(2) == 2
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def videos(tmp_path, vt):
    return vt.write_shapes_videos(tmp_path / "videos", 5, T=12, n_distractors=1)


def test_threads_decode_and_make_masks_exactly_as_one(videos, tmp_path):
    """The same frames, masks and cache files with 1 and 3 threads (each thread has its own flow object)."""
    out = {}
    for n in (1, 3):
        cfg = DataConfig(clip_len=5, size=(32, 32), cache_dir=str(tmp_path / f"c{n}"), prep_workers=n)
        ds = VideoFolder(videos, cfg=cfg, progress=False)
        mds = M.with_motion(ds, MotionConfig(), cfg, progress=False)
        assert mds.n_computed == 5
        out[n] = (
            [np.asarray(ds.frames(v)) for v in range(len(ds.videos))],
            [np.asarray(mds.video_masks(v)) for v in range(len(ds.videos))],
            sorted(p.name for p in (tmp_path / f"c{n}").rglob("*.npy")),
        )
    for a, b in zip(out[1][0] + out[1][1], out[3][0] + out[3][1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert out[1][2] == out[3][2] and len(out[1][2]) == 10  # keys do not depend on the thread count


def test_prep_workers_is_a_range_checked_key_left_out_of_feature_keys():
    from prednet2.eval.featureset import _data_options

    from prednet2.config import Config, ConfigError

    with pytest.raises(ConfigError, match="data.prep_workers"):
        Config.from_dict({"data": {"prep_workers": -1}})
    assert _data_options(replace(DataConfig(), prep_workers=4)) == _data_options(DataConfig())


def test_eval_reads_with_this_machines_threads_not_the_checkpoints():
    from prednet2.eval.common import data_config

    from prednet2.config import Config

    cfg = Config.from_dict({"data": {"prep_workers": 64}})  # trained on a big machine
    assert data_config(cfg).prep_workers == 0  # auto here
    assert data_config(cfg, prep_workers=2).prep_workers == 2
