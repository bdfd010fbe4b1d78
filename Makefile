# A newcomer needs two commands: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV_VERSION := 0.13.8

.PHONY: test lint typecheck unit demo bench lock clean clean-local ui

# Reinstall only when a requirements file changes. uv installs the pinned set in seconds;
# bytecode is compiled at install so imports stay fast where PYTHONDONTWRITEBYTECODE is set.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode \
		-r requirements.txt -r requirements-dev.txt
	touch $@

# The policy pack's own virtualenv (pulumi-policy pins protobuf/grpcio), as Pulumi runs it.
POLICY_STAMP := policy/venv/.installed
$(POLICY_STAMP): policy/requirements.txt $(STAMP)
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	$(BIN)/uv pip install --python policy/venv/bin/python --quiet --compile-bytecode \
		-r policy/requirements.txt
	touch $@

# checkov (SECURITY.md A7: scans the Kubernetes objects the stack creates) in its own
# virtualenv: its pins conflict with the main set.
CHECKOV_STAMP := tools/checkov/venv/.installed
$(CHECKOV_STAMP): tools/checkov/requirements.txt $(STAMP)
	test -x tools/checkov/venv/bin/python || $(PYTHON) -m venv tools/checkov/venv
	$(BIN)/uv pip install --python tools/checkov/venv/bin/python --quiet --compile-bytecode \
		-r tools/checkov/requirements.txt
	touch $@

test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) $(POLICY_STAMP) $(CHECKOV_STAMP)
	$(BIN)/python -m pytest

# The embedded default: the offline plan of the dev stack, the training pipeline run locally
# against a real MLflow server on 127.0.0.1 (data kept in .local/ between runs), then the
# champion served on 127.0.0.1 and asked a few digits. `make demo PORT=5001` where 5000 is taken.
PORT ?= 5000
demo: $(STAMP)
	$(BIN)/python -m stacks plan dev
	$(BIN)/python -m pipelines run-local training --port $(PORT)
	$(BIN)/python -m pipelines serve-local digits --port $(PORT)

# The local MLflow UI over what the demo left in .local/, until Ctrl-C.
ui: $(STAMP)
	$(BIN)/python -m pipelines ui --port $(PORT)

# Start the local runs afresh: the MLflow store, the runs and the cache under .local/.
clean-local:
	rm -rf .local

bench: $(STAMP)
	$(BIN)/python benchmarks/program_eval.py
	$(BIN)/python benchmarks/local_pipeline.py
	$(BIN)/python benchmarks/env_create.py

# Re-pin after editing requirements*.in.
lock: $(STAMP)
	$(BIN)/uv pip compile --quiet --python-version 3.11 --no-header --annotation-style line requirements.in -o requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --no-header --annotation-style line requirements-dev.in -o requirements-dev.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --no-header --annotation-style line policy/requirements.in -o policy/requirements.txt
	$(BIN)/uv pip compile --quiet --python-version 3.11 --no-header --annotation-style line tools/checkov/requirements.in -o tools/checkov/requirements.txt

clean:
	rm -rf $(VENV) policy/venv tools/checkov/venv .mypy_cache .pytest_cache .ruff_cache .hypothesis
