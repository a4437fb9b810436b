# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama-cpp-python (the tests' inference server) compiles llama.cpp: only the library it
# loads, no multimodal part, portable code (pip caches the wheel for the next install).
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF

.PHONY: install run test lint check bench clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	touch $(STAMP)

install: $(STAMP)

## The platform with the demo school: web server + a real Celery worker, until Ctrl-C.
run: install
	bash scripts/run.sh

## The whole test suite (PostgreSQL/Redis when DATABASE_URL/REDIS_URL are set).
test: install
	bash scripts/test.sh $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: install
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python manage.py check

bench: install
	$(BIN)/python bench/generation.py

clean:
	rm -rf $(VENV) var db.sqlite3 staticfiles
