"""datasets.flow: backends recover a known shift, the alignment convention, RAFT's clear errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from prednet2.datasets.flow import BACKENDS, FlowError, compute_flow, make_flow, to_gray


def textured_shift(n: int = 5, size: int = 64, dx: int = 2, dy: int = 1, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a smooth random texture translated by (dx, dy) px per frame (x right, y down)."""
    rng = np.random.default_rng(seed)
    big = cv2.resize(rng.random((24, 24, 3)).astype(np.float32), (size * 3, size * 3), interpolation=cv2.INTER_CUBIC)
    big = np.clip(big * 255, 0, 255).astype(np.uint8)
    o = size
    return np.stack([big[o - dy * t : o - dy * t + size, o - dx * t : o - dx * t + size] for t in range(n)])


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_recovers_translation_and_alignment(backend):
    frames = textured_shift(dx=2, dy=1)
    flow = compute_flow(frames, backend=backend)
    assert flow.shape == (5, 64, 64, 2) and flow.dtype == np.float32
    inner = flow[:, 12:-12, 12:-12]  # away from the borders, where content enters the frame
    # t == 0: forward flow (0 -> 1) = +motion; t >= 1: backward flow (t -> t-1) = -motion.
    np.testing.assert_allclose(np.median(inner[0].reshape(-1, 2), 0), [2, 1], atol=0.3)
    for t in range(1, 5):
        np.testing.assert_allclose(np.median(inner[t].reshape(-1, 2), 0), [-2, -1], atol=0.3)


def test_work_size_returns_flow_in_input_pixels():
    frames = textured_shift(size=32, dx=1, dy=0)
    flow = compute_flow(frames, backend="dis", work_size=96)
    assert flow.shape == (5, 32, 32, 2)
    np.testing.assert_allclose(np.median(flow[1:, 6:-6, 6:-6].reshape(-1, 2), 0), [-1, 0], atol=0.3)


def test_static_and_single_frame():
    still = np.repeat(textured_shift(n=1), 4, axis=0)
    assert np.abs(compute_flow(still, backend="dis")).max() < 0.05
    assert not compute_flow(still[:1], backend="dis").any()


def test_gray_inputs():
    frames = textured_shift()
    g = to_gray(frames)
    assert g.shape == (5, 64, 64) and g.dtype == np.uint8
    np.testing.assert_array_equal(to_gray(g[..., None]), g)
    assert np.abs(g[0].astype(int) - cv2.cvtColor(frames[0], cv2.COLOR_RGB2GRAY)).max() <= 1
    with pytest.raises(FlowError, match="uint8"):
        to_gray(frames.astype(np.float32))
    with pytest.raises(FlowError, match="channels-last"):
        to_gray(frames.transpose(0, 3, 1, 2))


def test_unknown_backend_names_choices():
    with pytest.raises(FlowError, match="motion.backend.*dis"):
        make_flow("lucas")
    assert set(BACKENDS) == {"dis", "farneback", "raft"}


def test_raft_without_weights_says_how(tmp_path):
    pytest.importorskip("torchvision")
    with pytest.raises(FlowError, match=r"cannot download.*motion\.raft_weights=/path"):
        make_flow("raft")
    with pytest.raises(FlowError, match="file not found.*nope.pth"):
        make_flow("raft", raft_weights=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FlowError, match="bad.pth is not a torch file") as e:
        make_flow("raft", raft_weights=str(bad))
    assert "weights_only" not in str(e.value)  # torch's advice to load unsafely is not the fix here


def test_raft_help_command_runs_as_pasted():
    """The command the RAFT error prints is pasted into a shell: its quotes must give valid Python to `python -c`."""
    import shlex

    from prednet2.datasets.flow import RAFT_HELP

    cmd = RAFT_HELP.split("`")[1]
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "-c"] and len(argv) == 3
    compile(argv[2], "<python -c>", "exec")  # nested double quotes used to end the shell string early
    assert "'raft_small.pth'" in argv[2]


def test_raft_with_local_weights_runs(tmp_path):
    """The RAFT path end to end with (random) raft_small weights saved locally: shapes and alignment only."""
    torch = pytest.importorskip("torch")
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    path = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), path)
    fn = make_flow("raft", raft_weights=str(path))
    fn.iters = 2  # random weights: only the plumbing is checked, keep it quick
    flow = compute_flow(textured_shift(n=3, size=32), flow_fn=fn)
    assert flow.shape == (3, 32, 32, 2) and np.isfinite(flow).all()
