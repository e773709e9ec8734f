# InkWeb developer commands. `make demo` and `make test` do all set-up themselves.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU wheel; every later pip call repeats the pin so that no
# dependency can pull a CUDA build of several GB.
TORCH_PIN := torch==2.13.0
PIP := $(BIN)/pip install --disable-pip-version-check -q
SHARED_DATA ?= ../shared/data
POSTGRES_TEST_URL ?= postgres://postgres@127.0.0.1:5432/inkweb

.PHONY: demo demo-slide test lint install static chromium weights clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) --upgrade pip
	$(PIP) $(TORCH_PIN)
	$(PIP) $(TORCH_PIN) -e '.[test]'
	touch $@

install: $(VENV)/.installed

node_modules/openseadragon/package.json: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# OpenSeadragon is copied from the pinned npm package, never edited by hand.
static/vendor/openseadragon/openseadragon.min.js: node_modules/openseadragon/package.json
	rm -rf static/vendor/openseadragon
	mkdir -p static/vendor
	cp -r node_modules/openseadragon/build/openseadragon static/vendor/openseadragon
	cp node_modules/openseadragon/LICENSE.txt static/vendor/openseadragon/ 2>/dev/null || true

static: static/vendor/openseadragon/openseadragon.min.js

demo: install static
	$(BIN)/python scripts/demo.py

demo-slide: install
	mkdir -p var/demo
	$(BIN)/inkremove simulate --demo-slide $(SHARED_DATA)/slides/cmu-1-small-region.svs \
		-o var/demo/demo-inked-slide.tiff

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Chromium from Debian's packages"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

lint: install
	$(BIN)/ruff check pipeline inkweb tests bench scripts
	$(BIN)/mypy

# The database-backed tests run twice: on SQLite, then on the PostgreSQL at
# POSTGRES_TEST_URL. The pipeline tests never touch a database and run once.
test: install static chromium lint
	$(BIN)/python -m pytest
	DATABASE_URL=$(POSTGRES_TEST_URL) $(BIN)/python -m pytest tests/web tests/integration

weights: install
	$(BIN)/inkremove train classifier --task ink --data $(SHARED_DATA) \
		--out pipeline/weights/ink-classifier.pt --seed 0
	$(BIN)/inkremove train classifier --task background --data $(SHARED_DATA) \
		--out pipeline/weights/background-classifier.pt --seed 0
	$(BIN)/inkremove train detector --data $(SHARED_DATA) \
		--out pipeline/weights/detector.pt --seed 0
	$(BIN)/inkremove train paired --data $(SHARED_DATA) \
		--out pipeline/weights/paired-unet.pt --seed 0
	for domain in single dense sparse; do \
		$(BIN)/inkremove train cyclegan --domain $$domain --data $(SHARED_DATA) \
			--out pipeline/weights/cyclegan-$$domain.pt --seed 0 --threads 1 || exit 1; \
	done

clean:
	rm -rf $(VENV) node_modules static/vendor staticfiles .pytest_cache .mypy_cache .ruff_cache
