# make setup: .venv with everything (torch CPU first); make demo: build the default release
# offline; make test: the test suite. demo and test run setup first when needed.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.refuseu-setup
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
PYTEST_ARGS ?=

.PHONY: setup demo test test-fast bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first: an unpinned torch pulled in by another package would be a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

demo: setup
	$(OFFLINE) $(VENV)/bin/refuseu build
	$(OFFLINE) $(VENV)/bin/refuseu inspect releases/refuseu-seed-v$$($(PY) -c "import yaml;print(yaml.safe_load(open('recipes/default.yaml'))['version'])")

test: setup
	$(OFFLINE) $(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: setup
	$(OFFLINE) $(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: setup
	$(OFFLINE) $(PY) benchmarks/pipeline.py

clean:
	rm -rf .refuseu-build releases
