"""prednet2.distributed and the DDP path of the trainer.

- helpers without a process group (single-process fallbacks);
- the global-batch statistics (``batch_sync``) and the gradient average, on 2 gloo processes (torch.multiprocessing),
  against the same losses computed on the whole batch in one process;
- ``torchrun --nproc_per_node 2 train.py`` against ``python train.py`` at the same global batch: parameters allclose,
  and an audit hook on rank 1 proves it opens no file under the run folder for writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from spawn_helpers import free_port, spawn_workers

from prednet2 import distributed as pd
from prednet2.losses import covariance_penalty, info_nce, variance_hinge

REPO = Path(__file__).resolve().parents[1]


# ---- no process group ----------------------------------------------------------------------------------------
def test_single_process_fallbacks(monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    info = pd.setup_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.enabled) == (0, 1, True, False)
    assert not dist.is_initialized()
    assert pd.is_main_process()
    t = torch.tensor([1.0, 3.0])
    assert torch.equal(pd.all_reduce_mean(t.clone()), t)
    assert pd.reduce_scalars({"a": 2.0}) == {"a": 2.0}
    with pd.batch_sync(True):
        assert not pd.batch_sync_active()  # no group: the losses keep their single-process path
    monkeypatch.setenv("RANK", "1")
    assert not pd.is_main_process()  # read from the torchrun environment before any group exists
    with pytest.raises(ValueError, match="device"):
        pd.setup_distributed("tpu")


def test_sampler_shards_are_the_global_batch():
    """Every rank draws the same global batch and keeps a disjoint share; together they are the 1-process batch."""
    from prednet2.trainer import ResumableBatchSampler  # here, so spawned workers need not import the trainer

    one = list(ResumableBatchSampler(37, 8, seed=3))
    shards = [list(ResumableBatchSampler(37, 8, seed=3, rank=r, world_size=2)) for r in range(2)]
    assert len(one) == len(shards[0]) == len(shards[1]) == 4
    for b, batch in enumerate(one):
        a, c = shards[0][b], shards[1][b]
        assert len(a) == len(c) == 4 and not set(a) & set(c)
        assert sorted(a + c) == sorted(batch)
    with pytest.raises(ValueError, match="divisible"):
        ResumableBatchSampler(37, 6, seed=0, rank=0, world_size=4)


# ---- 2 gloo processes: batch statistics and gradient averaging ---------------------------------------------
def _batch_losses(a: torch.Tensor, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    # a: (B, C, H, W) representation; q, k: (B, D) binding projections. Per-sample error term + batch statistics.
    return a.pow(2).mean() + variance_hinge(a) + 0.04 * covariance_penalty(a) + info_nce(q, k)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    info = pd.setup_distributed("cpu")
    assert info.world_size == world and info.rank == rank and info.is_main == (rank == 0)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 4, 3, 3, generator=g)
    q, k = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    w = torch.randn(4, 4, generator=g)  # a "parameter" shared by all ranks
    n = a.shape[0] // world
    sl = slice(rank * n, (rank + 1) * n)
    wp = torch.nn.Parameter(w.clone())
    with pd.batch_sync(True):
        assert pd.batch_sync_active()
        loss = _batch_losses(torch.einsum("oc,bchw->bohw", wp, a[sl]), q[sl] @ wp, k[sl] @ wp.T)
    loss.backward()
    pd.all_reduce_grads([wp])
    total = pd.reduce_scalars({"loss": float(loss)})["loss"]
    if rank == 0:
        torch.save({"grad": wp.grad, "loss": total}, out)
    pd.cleanup()


def test_batch_sync_gradient_equals_global_batch(tmp_path):
    out = str(tmp_path / "grad.pt")
    spawn_workers(_worker, out, outputs=(out,))
    got = torch.load(out, weights_only=True)

    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, 4, 3, 3, generator=g)
    q, k = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    wp = torch.nn.Parameter(torch.randn(4, 4, generator=g))
    loss = _batch_losses(torch.einsum("oc,bchw->bohw", wp, a), q @ wp, k @ wp.T)
    loss.backward()
    # The per-rank losses average to the global one only because the batch statistics are global.
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-5)
    torch.testing.assert_close(got["grad"], wp.grad, rtol=1e-5, atol=1e-6)


# ---- 2 gloo processes: the real stack with the motion stream (binding InfoNCE over the global batch) ----------
def _stack_grads(model, clip: torch.Tensor, mask: torch.Tensor) -> tuple[float, dict[str, torch.Tensor]]:
    out = model(clip, mask)
    loss = torch.stack(out.losses).sum()
    loss.backward()
    return out.stats["bind"], {n: p.grad for n, p in model.named_parameters() if p.grad is not None}


def _stack_inputs():
    from prednet2 import ModelConfig, PredictiveStack

    torch.manual_seed(0)
    model = PredictiveStack(ModelConfig(channels=(4, 8), motion_channels=4))
    g = torch.Generator().manual_seed(1)
    clip = torch.rand(4, 3, 3, 16, 16, generator=g)  # (B, T, C, H, W), global batch 4
    mask = (torch.rand(4, 3, 1, 16, 16, generator=g) > 0.7).float()
    return model, clip, mask


def _stack_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    pd.setup_distributed("cpu")
    model, clip, mask = _stack_inputs()
    n = clip.shape[0] // world
    with pd.batch_sync(True):
        bind, grads = _stack_grads(model, clip[rank * n : (rank + 1) * n], mask[rank * n : (rank + 1) * n])
    pd.all_reduce_grads(model.parameters())
    bind = pd.reduce_scalars({"b": float(bind)})["b"]  # every rank joins the collective
    if rank == 0:
        torch.save({"bind": bind, "grads": grads}, out)
    pd.cleanup()


def test_stack_binding_two_processes_equal_one(tmp_path):
    """The motion stream's RGB<->motion InfoNCE under DDP: 2 processes of 2 clips == 1 process of 4 clips.

    With per-rank negatives the bind loss would be lower (2 candidates per row, not 4) and its gradients differ.
    """
    out = str(tmp_path / "stack.pt")
    spawn_workers(_stack_worker, out, outputs=(out,))
    got = torch.load(out, weights_only=True)
    model, clip, mask = _stack_inputs()
    bind, grads = _stack_grads(model, clip, mask)
    assert got["bind"] == pytest.approx(float(bind), rel=1e-5)
    assert got["grads"].keys() == grads.keys() and any("bind" in k or "motion" in k for k in grads)
    for k, g in grads.items():
        torch.testing.assert_close(got["grads"][k], g, rtol=1e-4, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


# ---- 2 gloo processes: rank 0 builds the data (decode and mask caches) first ------------------------------------
def _data_worker(rank: int, world: int, port: int, log: str) -> None:
    import time

    from prednet2.datasets import DataError

    from prednet2 import train_data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    pd.setup_distributed("cpu")

    def fake_build(cfg, spec, progress=True):  # stands in for decoding a folder into the cache
        with open(log, "a") as f:
            f.write(f"start {rank}\n")
        if spec == "broken":
            raise DataError("broken: no usable video")
        time.sleep(0.5 if rank == 0 else 0.0)
        with open(log, "a") as f:
            f.write(f"end {rank}\n")
        return [spec]

    train_data._build = fake_build
    assert train_data.build_train_data(None, "ok") == ["ok"]
    try:
        train_data.build_train_data(None, "broken")
    except DataError as e:
        with open(log, "a") as f:
            f.write(f"error {rank}: {e}\n")
    pd.cleanup()


def test_rank0_builds_the_data_first(tmp_path):
    """One node: LOCAL_RANK 0 decodes and computes masks into the cache while the others wait, then they read it."""
    log = tmp_path / "order.txt"
    spawn_workers(_data_worker, str(log), outputs=(str(log),))
    lines = log.read_text().splitlines()
    assert lines[:2] == ["start 0", "end 0"] and lines.index("start 1") > lines.index("end 0"), lines
    # A failure on rank 0 releases rank 1, which stops with a DataError instead of waiting for a timeout (and
    # never builds the broken data itself).
    assert lines.count("start 1") == 1 and "error 0: broken: no usable video" in lines
    assert any(line.startswith("error 1: broken: rank 0 could not build") for line in lines), lines


# ---- torchrun train.py vs python train.py ------------------------------------------------------------------
_AUDIT = """
import os, sys
out = os.path.realpath(sys.argv.pop(1)); log = sys.argv.pop(1)
if os.environ.get("RANK", "0") != "0":
    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path, mode, flags = (list(args) + [None, None])[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and os.path.realpath(os.fsdecode(path)).startswith(out):
                with open(log, "a") as f:
                    f.write(os.fsdecode(path) + "\\n")
    sys.addaudithook(hook)
sys.argv[0] = "train.py"
import runpy
runpy.run_path("train.py", run_name="__main__")
"""

_SETS = [
    "data.n_synthetic=32",
    "data.batch_size=4",
    "data.clip_len=6",
    "data.size=[32,32]",
    "train.window=3",
    "train.warmup_steps=2",
    "train.log_every=1",
    "train.threads=1",
    # Motion on: the RGB<->motion binding (InfoNCE) must draw its negatives from the global batch.
    "motion=on",
    "motion.cache=false",
]


def _train_cmd(out: Path, steps: int) -> list[str]:
    cmd = ["train.py", "--data", "synthetic:shapes", "--out", str(out), "--steps", str(steps), "--no-progress"]
    for s in _SETS:
        cmd += ["--set", s]
    return cmd


def _start(cmd: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(p: subprocess.Popen) -> str:
    out, err = p.communicate(timeout=300)
    assert p.returncode == 0, err[-3000:]
    return out


@pytest.mark.slow  # ~55 s on the shared 2 cores; the fast gloo check is test_batch_sync_gradient_equals_global_batch
def test_torchrun_two_processes_match_one(tmp_path):
    """2 CPU processes (gloo) at global batch 4 == 1 process at batch 4, motion on, after 3 steps (6 updates)."""
    one, two = tmp_path / "one", tmp_path / "two"
    audit, writes = tmp_path / "audit.py", tmp_path / "rank1_writes.txt"
    audit.write_text(_AUDIT)
    # Both runs at once: most of the time is interpreter start-up and imports, not training.
    p_one = _start([sys.executable, *_train_cmd(one, 3)])
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port"]
    cmd = _train_cmd(two, 3)
    p_two = _start([*torchrun, str(free_port()), str(audit), str(two), str(writes), *cmd[1:]])
    _finish(p_one)
    stdout = _finish(p_two)

    a = torch.load(one / "checkpoints/last.pt", weights_only=True)
    b = torch.load(two / "checkpoints/last.pt", weights_only=True)
    assert b["step"] == a["step"] == 3
    assert a["config"]["model"]["motion_channels"] > 0 and b["config"]["motion"]["enabled"]  # the binding ran
    # Tolerance: float32 sums in a different order (per-rank partial sums, then the all-reduce) give ~1e-7
    # relative gradient differences, which Adam's normalisation can lift to ~1e-5 on near-zero gradients; a
    # wrong average, a wrong shard or per-rank batch statistics move parameters by ~1e-3 (lr 3e-3).
    for key, va in a["model"].items():
        torch.testing.assert_close(b["model"][key], va, rtol=0, atol=1e-4, msg=lambda m, k=key: f"{k}: {m}")
    la = json.loads((one / "summary.json").read_text())["final_loss"]
    lb = json.loads((two / "summary.json").read_text())["final_loss"]
    for l in la:
        assert lb[l] == pytest.approx(la[l], rel=1e-4)
    # Only rank 0 writes: the audit hook on rank 1 saw no open-for-write under the run folder, one event file.
    assert not writes.exists(), writes.read_text()
    assert len(list((two / "tb").glob("events.out.tfevents*"))) == 1
    assert stdout.count("done:") == 1, stdout
