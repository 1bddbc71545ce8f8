"""prednet2: self-supervised video representation learning by predictive coding.

The repo keeps `datasets/` and `eval/` at the top level (so `python -m datasets.inspect` works from a clone),
but installs them as `prednet2.datasets` and `prednet2.eval`: a top-level `datasets` package would shadow
Hugging Face `datasets` on a user's machine.

The fused error-unit op in `cuda_ext/` is built as `prednet2._C`:
- always as a C++ CPU extension;
- also with the CUDA kernels when `CUDA_HOME` (or nvcc on PATH) is found, targeting sm_80 and sm_90
  (override with TORCH_CUDA_ARCH_LIST);
- not at all when PREDNET2_NO_EXT=1 (the pure-torch reference is used then).
"""

import glob
import os

from setuptools import setup

PINS = [
    "torch==2.14.1",
    "torchvision==0.29.1",
    "av",
    "kornia",
    "einops",
    "tensorboard",
    "numba",
    "tqdm",
    "pyyaml",
    "scikit-learn",
    # OpenCV's DIS/Farneback optical flow: a fast classical CPU flow, no weights to download (motion masks).
    "opencv-python-headless",
    # eval.report and eval.surprise draw PNG charts.
    "matplotlib",
]


STANDARD_NVCC = "/usr/local/cuda/bin/nvcc"


def ext_modules():
    if os.environ.get("PREDNET2_NO_EXT") == "1":
        return [], {}
    sources_cpp = sorted(glob.glob("cuda_ext/*.cpp"))
    if not sources_cpp:
        return [], {}
    # torch guesses CUDA_HOME from the nvcc on PATH; a wrapper script there (/usr/local/bin/nvcc) makes it guess
    # /usr/local, which has no CUDA runtime to link. The standard toolkit folder comes first, as in the Makefile.
    if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")) and os.path.exists(STANDARD_NVCC):
        os.environ["CUDA_HOME"] = os.path.dirname(os.path.dirname(STANDARD_NVCC))
    try:
        from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension
    except ImportError:
        # An isolated build env has no torch: install with `pip install --no-build-isolation -e .` (make install
        # does) to get the extension; without it prednet2 runs on the pure-torch reference op.
        print("prednet2: torch not importable at build time; skipping the error-unit extension")
        return [], {}

    sources_cu = sorted(glob.glob("cuda_ext/*.cu"))
    # torch 2.14 headers need C++20. -fno-trapping-math lets GCC turn the error-unit backward's selects into blends
    # and vectorise it (nothing here relies on floating-point exception flags).
    cxx = ["-O3", "-std=c++20", "-fopenmp", "-fno-trapping-math"]
    with_cuda = bool(sources_cu) and CUDA_HOME is not None and os.environ.get("PREDNET2_NO_CUDA") != "1"
    headers = glob.glob(os.path.join(CUDA_HOME or "", "include", "cuda_runtime.h"))
    headers += glob.glob(os.path.join(CUDA_HOME or "", "targets", "*", "include", "cuda_runtime.h"))
    if with_cuda and not headers:  # e.g. a guess from a wrapper nvcc: the CUDA link would fail
        print(f"prednet2: CUDA_HOME={CUDA_HOME} holds no CUDA toolkit (no cuda_runtime.h); building the CPU op only")
        with_cuda = False
    if with_cuda:
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
        ext = CUDAExtension(
            "prednet2._C",
            sources_cpp + sources_cu,
            include_dirs=[os.path.abspath("cuda_ext")],
            extra_compile_args={"cxx": cxx + ["-DWITH_CUDA"], "nvcc": ["-O3", "-DWITH_CUDA"]},
            extra_link_args=["-fopenmp"],
        )
    else:
        ext = CppExtension(
            "prednet2._C",
            sources_cpp,
            include_dirs=[os.path.abspath("cuda_ext")],
            extra_compile_args={"cxx": cxx},
            extra_link_args=["-fopenmp"],
        )
    print(f"prednet2: building the error-unit extension ({'C++ and CUDA' if with_cuda else 'C++ CPU only'})")
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=False)}


exts, cmdclass = ext_modules()

setup(
    name="prednet2",
    version="0.1.0",
    description="Self-supervised video representation learning by predictive coding",
    python_requires=">=3.10",
    packages=["prednet2", "prednet2.datasets", "prednet2.eval"],
    package_dir={"prednet2": "prednet2", "prednet2.datasets": "datasets", "prednet2.eval": "eval"},
    py_modules=[],
    install_requires=PINS,
    extras_require={"dev": ["pytest", "pytest-timeout", "ruff"]},
    # One command for every tool: `prednet2 train ...`, `prednet2 probe ...` (prednet2/cli.py holds the table).
    entry_points={"console_scripts": ["prednet2=prednet2.cli:main"]},
    ext_modules=exts,
    cmdclass=cmdclass,
)
