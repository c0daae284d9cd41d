# Two commands do all the set-up: `make demo` runs the main job, `make test` the tests.
# Both create (or reuse) the virtualenv $(VENV) and install what they need.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on this kind of machine; override for a CUDA build: make TORCH=torch==2.13.0+cu128
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: demo test lint package-check bench-cost clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[examples,test]"
	touch $@

# The main job: fine-tune the packaged MiniLM with AutoDrop on the generated offline task (~1 min).
demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) examples/glue/run_glue.py examples/glue/demo.json

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Two workers: most of the suite's time is one-threaded start-up of subprocesses (Trainer runs, launches).
test: lint
	$(PY) -m pytest -q -n 2

# The wheel and sdist install into a fresh virtualenv (torch from TORCH, the rest from the index) and work.
package-check: $(VENV)/.installed
	rm -rf dist build/package-check
	$(PY) -m build --sdist --wheel --outdir dist . > /dev/null
	$(PYTHON) -m venv build/package-check
	build/package-check/bin/pip install --quiet "$(TORCH)"
	build/package-check/bin/pip install --quiet dist/*.whl
	cd build && package-check/bin/python ../tests/package_smoke.py
	build/package-check/bin/pip install --quiet --force-reinstall --no-deps dist/*.tar.gz
	cd build && package-check/bin/python ../tests/package_smoke.py

# What AutoDrop costs per step, on this machine (~22 min on 2 CPU cores; run it on a quiet machine).
bench-cost: $(VENV)/.installed
	$(PY) benchmarks/step_overhead.py --model tiny --steps 1000
	$(PY) benchmarks/step_overhead.py --model minilm --steps 300
	$(PY) benchmarks/step_overhead.py --model minilm --steps 300 --average
	$(PY) benchmarks/step_overhead.py --model minilm --steps 100 --batch_size 32 --seq_len 128
	$(PY) benchmarks/step_overhead.py --model minilm --steps 300 --sample_fraction 0.01
	$(PY) benchmarks/step_overhead.py --model minilm --steps 100 --batch_size 32 --seq_len 128 --sample_fraction 0.01
	$(PY) benchmarks/step_overhead.py --model minilm --steps 300 --window_size 1
	$(PY) benchmarks/step_overhead.py --model minilm --steps 300 --window_size 1 --sample_fraction 0.01
	$(PY) benchmarks/fused_pass.py
	$(PY) benchmarks/gather_floor.py
	$(PY) benchmarks/trainer_overhead.py --model minilm --steps 60 --repeats 4
	$(PY) benchmarks/aggregate.py > /dev/null

clean:
	rm -rf $(VENV) build *.egg-info
