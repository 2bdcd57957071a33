# Quick start: `make lab` (everything, then the default lab), `make test` (the whole suite).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
INVOKE := $(VENV)/bin/invoke
STAMP := $(VENV)/.installed

.PHONY: lab test deps venv docker images lint bench vcsim down docker-stop clean

lab: deps venv docker images
	$(INVOKE) lab.up

test: deps venv docker images
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

deps:
	@if [ "$$(id -u)" = 0 ]; then scripts/host-setup; \
	else echo "not root: skipping host packages (run 'sudo scripts/host-setup' once)"; fi

venv: $(STAMP)
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

docker:
	@scripts/ensure-docker

images: venv docker
	$(PY) -m lab.images

vcsim: venv
	$(PY) -m lab.vcsim build

bench: deps venv docker images
	$(PY) -m bench

lint: venv
	$(VENV)/bin/ruff check .

down: venv
	$(INVOKE) lab.down

# Ends only the dockerd that scripts/ensure-docker started (its PID file), nothing else.
docker-stop:
	@if [ -f .cache/dockerd.pid ]; then kill "$$(cat .cache/dockerd.pid)" && rm .cache/dockerd.pid; fi

clean:
	rm -rf .cache/go .pytest_cache .ruff_cache
