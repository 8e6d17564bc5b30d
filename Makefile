# Two commands for a fresh machine: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
HOST    ?= 127.0.0.1
PORT    ?= 8000

.PHONY: run test install index lint eval bench clean browser

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,scale]"
	touch $(STAMP)

install: $(STAMP)

index: $(STAMP)
	$(BIN)/rag index

run: $(STAMP)
	$(BIN)/rag serve --host $(HOST) --port $(PORT)

# Debian's Chromium for the browser test; without it that one test skips with the reason.
browser:
	@command -v chromium >/dev/null 2>&1 && fc-list :lang=zh | grep -q . || { apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; } \
	  || echo "chromium could not be installed: the browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/ruff check rag api tests eval
	$(BIN)/rag index
	$(BIN)/pytest -q
	$(BIN)/rag eval

lint: $(STAMP)
	$(BIN)/ruff check rag api tests eval

eval: $(STAMP)
	$(BIN)/rag eval

bench: $(STAMP)
	$(BIN)/rag bench

clean:
	rm -rf $(VENV) index/current index/cache index/chunks.jsonl
