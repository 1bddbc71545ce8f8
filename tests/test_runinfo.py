"""prednet2.runinfo: the environment a run records beside its config (versions, CPU, kernels, threads)."""

from __future__ import annotations

import torch

from prednet2 import runinfo


def test_kernels_name_the_capability_and_every_override_set(monkeypatch):
    for k in runinfo.KERNEL_ENV:
        monkeypatch.delenv(k, raising=False)
    cap = torch.backends.cpu.get_cpu_capability()
    assert runinfo.kernels() == cap
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    monkeypatch.setenv("MKL_CBWR", "")  # set but empty: not an override
    assert runinfo.kernels() == f"{cap} ONEDNN_MAX_CPU_ISA=AVX2"


def test_environment_holds_versions_cpu_kernels_and_threads():
    env = runinfo.environment(torch.device("cpu"))
    assert env["torch"] == torch.__version__ and env["threads"] == torch.get_num_threads()
    assert env["cpu"] and env["kernels"] == runinfo.kernels() and "gpu" not in env
