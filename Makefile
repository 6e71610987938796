# Weir's front door. `make up` runs the stack on the sample models; `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
MODELS := models/digits/1/model.onnx models/digits/2/model.onnx models/cnn/1/model.onnx \
          models/handwriting/1/model.onnx

.PHONY: up test test-image test-prometheus fuzz lint bench render deps system-deps models clean

up: deps models
	$(VENV)/bin/weir up release.yaml

test: deps models
	$(PY) -m pytest -q
	busted --lpath='lua/?.lua;lua/?/init.lua' tests/lua

# The image really built and run (podman, ../shared/CONTAINERS.md): limits, health, an inference,
# a kill switch, the SIGTERM drain; then `weir k8s` output under `podman kube play`. Minutes;
# not part of `make test`; skips, saying why, where podman cannot run containers.
test-image: deps
	$(PY) -m pytest -q -s -p no:cacheprovider tests/image

# A real Prometheus against `weir up` (also part of `make test`; skips without prometheus).
test-prometheus: deps models
	$(PY) -m pytest -q tests/integration/observability tests/unit/observability

# The HTTP fuzz (Schemathesis from nginx/openapi.yaml) and the hostile barrage against a real
# `weir up`, long: 20,000 examples and 5,000 requests (short runs are part of `make test`).
fuzz: deps models
	WEIR_FUZZ=long $(PY) -m pytest -q -s tests/fuzz

lint: deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	luacheck lua tests/lua
	$(VENV)/bin/hadolint Dockerfile

# The sidecar against its baselines, the edge hop against a bare nginx proxy_pass, then image
# uploads through the edge (tests/bench/IMAGES_RESULTS.md), then a 10% shadow's cost to clients
# (tests/bench/SHADOW_RESULTS.md).
bench: deps models
	$(PY) -m tests.bench.run
	$(PY) -m tests.bench.edge_hop
	$(PY) -m tests.bench.images
	$(PY) -m tests.bench.shadow

render: deps
	$(VENV)/bin/weir render release.yaml

deps: system-deps $(VENV)/.installed

system-deps:
	@scripts/install_system_deps.sh

# Pinned by constraints.txt. The optional meinheld worker (for make bench's comparison and its
# tests) goes in without its stale greenlet<0.5 pin; it compiles (no wheel).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[dev,meinheld]'
	$(PIP) install -q -c constraints.txt --no-deps meinheld
	touch $@

models: $(MODELS)

$(MODELS) &: models/build_samples.py | $(VENV)/.installed
	$(PY) models/build_samples.py

clean:
	rm -rf $(VENV) .weir models/*/[0-9]*/
