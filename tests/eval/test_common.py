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
