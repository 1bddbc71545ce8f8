"""eval.common's runtime options: --threads bounds torch and the BLAS under the probes' solver alike."""

import torch
from prednet2.eval.common import set_threads
from threadpoolctl import threadpool_info, threadpool_limits


def test_threads_bound_torch_and_blas():
    before = torch.get_num_threads()
    with threadpool_limits():  # restores every library's thread count on exit
        try:
            set_threads(1)
            assert torch.get_num_threads() == 1
            blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
            assert blas and all(i["num_threads"] == 1 for i in blas)  # numpy's and scipy's OpenBLAS
        finally:
            torch.set_num_threads(before)


def test_zero_threads_leaves_the_defaults():
    before = torch.get_num_threads()
    set_threads(0)
    assert torch.get_num_threads() == before


def test_truncated_files_counts_each_video_cut_by_a_decode_error_once(tmp_path):
    """probe.json / knn.json / emb.npz record the videos read only up to a decode error, beside the skipped ones."""
    import importlib.util
    from pathlib import Path

    from prednet2.datasets.folder import VideoFolder
    from prednet2.eval.common import truncated_files

    helpers_py = Path(__file__).parents[1] / "datasets" / "conftest.py"
    spec = importlib.util.spec_from_file_location("video_helpers", helpers_py)
    helpers = importlib.util.module_from_spec(spec)  # tests/ has no __init__.py: the PyAV writers, loaded by path
    spec.loader.exec_module(helpers)
    root = tmp_path / "v"
    helpers.write_broken_mp4(root / "broken.mp4")
    ds = VideoFolder(root, clip_len=4, size=(16, 16), cache_dir=tmp_path / "c", progress=False)
    got = truncated_files(ds, ds, object())  # the same video in two splits counts once; a synthetic set has none
    assert got == {"n_truncated": 1, "truncated": [{"path": str(root / "broken.mp4"), "frames": ds.num_frames(0)}]}
