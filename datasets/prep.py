"""Per-video preparation in threads: the first read of a folder decodes every video and makes its motion masks.

FFmpeg's decoder and scaler and OpenCV's optical flow release the GIL, so threads run them on several cores
without copying frames between processes. Each video is independent and its result goes to its own cache file
(written atomically), so the output is the same with any number of threads; only the time changes
(``benchmarks/data_throughput.py --prep``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import TypeVar

from tqdm.auto import tqdm

from prednet2.busy import usable_cores

T = TypeVar("T")
R = TypeVar("R")
AUTO_MAX = 8  # beyond this the disk and the memory of the videos in flight matter more than cores


def prep_workers(requested: int = 0) -> int:
    """Threads for per-video preparation: ``requested`` when > 0 (``data.prep_workers``), else the cores this
    process may use, at most ``AUTO_MAX`` and at most torch's thread count, so a run held to one thread
    (``--threads 1``, ``train.threads=1``, ``OMP_NUM_THREADS=1``) prepares on one too."""
    if requested > 0:
        return int(requested)
    import torch

    return max(1, min(AUTO_MAX, usable_cores(), torch.get_num_threads()))


def ordered_map(
    fn: Callable[[T], R], items: Sequence[T], *, workers: int, desc: str, unit: str = "video", progress: bool = True
) -> list[R]:
    """``[fn(x) for x in items]``, run on ``workers`` threads (1: in this thread), with one tqdm bar. An exception
    from ``fn``, or Ctrl-C, is raised here as the loop would raise it, without starting the items still waiting."""
    bar = tqdm(total=len(items), desc=desc, unit=unit, disable=not progress or not items)
    try:
        if workers <= 1 or len(items) <= 1:
            out = []
            for x in items:
                out.append(fn(x))
                bar.update()
            return out
        ex = ThreadPoolExecutor(max_workers=min(workers, len(items)))
        try:
            futures = [ex.submit(fn, x) for x in items]
            for f in as_completed(futures):
                f.result()  # fn's exception, raised here as the loop would raise it
                bar.update()
            return [f.result() for f in futures]
        finally:  # an error or Ctrl-C: the videos not started are dropped, the few running finish
            ex.shutdown(wait=True, cancel_futures=True)
    finally:
        bar.close()
