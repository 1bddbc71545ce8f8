"""Facts about the run's environment: git commit, package version, kernels, device resolution, peak memory.

Kept apart from the trainer so eval/ and benchmarks/ record the same facts the same way.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from prednet2.config import ConfigError

_REPO = Path(__file__).resolve().parent.parent


def git_commit(repo: str | Path = _REPO) -> str:
    """The commit hash of the checkout prednet2 runs from, with ``-dirty`` when there are local changes.

    Returns ``"unknown"`` outside a git checkout (an installed wheel) or when git is missing, since a run must
    not fail for want of provenance.
    """
    try:
        sha = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "") if sha else "unknown"


def prednet2_version() -> str:
    import prednet2

    return getattr(prednet2, "__version__", "unknown")


# Environment variables that change which CPU kernels torch dispatches (and so the last bits of every result).
KERNEL_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``, else ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def kernels() -> str:
    """Which CPU kernels this process dispatches: ATen's capability (``AVX512``, ``AVX2``, ...) and the overrides set.

    On one machine, runs with the same config, seed and thread count are bit-identical; under another string
    (``ATEN_CPU_CAPABILITY``/``ONEDNN_MAX_CPU_ISA`` set, or another CPU) the last bits differ and a few hundred
    training steps grow them into a run as different as another seed (docs/training.md, round 79). The same string
    on another CPU model need not give the same bits either (oneDNN also picks kernels by CPU), hence ``cpu_model``.
    """
    cap = torch.backends.cpu.get_cpu_capability()
    overrides = [f"{k}={os.environ[k]}" for k in KERNEL_ENV if os.environ.get(k)]
    return " ".join([cap, *overrides])


def environment(device: torch.device | None = None) -> dict[str, object]:
    """What a run's figures depend on beyond its config and seed: versions, CPU, kernels, threads, GPU."""
    env: dict[str, object] = {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "kernels": kernels(),
        "threads": torch.get_num_threads(),
    }
    if device is not None and device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> cuda when available else cpu; ``"cuda"`` without a GPU raises ConfigError (exit 2 in CLIs)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} requested but CUDA is not available here; use --device cpu or auto")
        return torch.device(name)
    raise ConfigError(f"train.device: expected auto, cpu or cuda, got {name!r}")


def read_proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (``VmHWM`` peak RSS, ``VmRSS`` current RSS); None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of this process; False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def read_rss_mb() -> dict[str, float]:
    """Current and peak resident set size of this process in MiB, from /proc/self/status (VmRSS, VmHWM)."""
    out = {"rss_mb": float("nan"), "peak_rss_mb": float("nan")}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    out["peak_rss_mb"] = int(line.split()[1]) / 1024
    except OSError:  # not Linux: fall back to the peak from getrusage (KiB on Linux, bytes on macOS)
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["peak_rss_mb"] = peak / (1024 * 1024 if sys.platform == "darwin" else 1024)
    return out
