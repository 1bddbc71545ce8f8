# prednet2: `make demo` and `make test` work on a fresh machine (they install first).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.prednet2-installed
EXT_SRC := $(wildcard cuda_ext/*.cpp cuda_ext/*.cu cuda_ext/*.h)
# nvcc lives in the standard toolkit folder; with it the CUDA kernels are compiled too (PREDNET2_NO_CUDA=1 skips).
export CUDA_HOME ?= $(shell [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda)
DEMO_RUN ?= runs/demo
PYTEST_ARGS ?=

.PHONY: install demo test test-slow lint bench clean

install: $(STAMP)

# Idempotent: the stamp depends on setup.py and the extension sources, so a second `make install` is a no-op.
$(STAMP): setup.py $(EXT_SRC)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "setuptools>=64" wheel
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q --no-build-isolation -e '.[dev]'
	@touch $(STAMP)

# The demo: train the default tiny stack (motion on), then probe the 8-way direction task (which needs motion: a
# single frame cannot answer it) for the trained model, the same architecture at random init, and raw pixels, and
# end with a three-row table and a chart (eval.demo_summary). Sized for about 5 minutes on 2 CPU cores:
# - 150 steps over 512 synthetic clips: a clip's motion masks are computed once (~76 ms) and cached, and later
#   epochs read them (docs/results/training.md: 200 steps over 2048 clips spent a third of the training time on masks);
# - probes on 384/192 clips, 3 seeds; the masks of the probe clips are computed once and shared by the probes;
# - one torch thread plus one DataLoader worker: the masks are computed on the second core while the first trains
#   (and one thread is far faster than two fighting other processes for the cores);
# - every cache lives in the run folder, so each demo starts cold, as on a fresh machine.
DEMO_STEPS ?= 150
DEMO_SETS := --set data.n_synthetic=512 --set data.cache_dir=$(DEMO_RUN)/cache --set train.image_every=50 \
	--set train.threads=1 --set data.num_workers=1
DEMO_PROBE := --data synthetic:shapes:direction --seeds 3 --n-train 384 --n-test 192 --threads 1 --num-workers 1
DEMO_CKPT := --checkpoint $(DEMO_RUN)/checkpoints/last.pt
demo: install
	rm -rf $(DEMO_RUN)
	$(PY) train.py --data synthetic:shapes --out $(DEMO_RUN) --steps $(DEMO_STEPS) $(DEMO_SETS)
	$(PY) -m eval.linear_probe $(DEMO_CKPT) $(DEMO_PROBE) --out $(DEMO_RUN)/probe.json
	$(PY) -m eval.linear_probe $(DEMO_CKPT) $(DEMO_PROBE) --random-init --out $(DEMO_RUN)/probe_random_init.json
	$(PY) -m eval.linear_probe $(DEMO_CKPT) $(DEMO_PROBE) --baseline pixels --out $(DEMO_RUN)/probe_pixels.json
	@echo
	$(PY) -m eval.demo_summary $(DEMO_RUN)
	@echo "Results:     $(DEMO_RUN)/summary.json  $(DEMO_RUN)/probe*.json"
	@echo "TensorBoard: $(VENV)/bin/tensorboard --logdir $(DEMO_RUN)/tb"

test: install
	$(PY) -m pytest -m "not slow" -q $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf build *.egg-info prednet2/_C*.so runs
