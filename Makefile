# make run  — set up and start the site (emulator mode when WX_APPID is not configured)
# make test — set up and run every test, browser tests included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: run test serve bench system-deps clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask --app wsgi wx run --port $(PORT)

# Browser and proxy tests need Debian's chromium and nginx (ffmpeg makes voice playable).
system-deps:
	@missing=""; \
	for pair in chromium:chromium nginx:nginx ffmpeg:ffmpeg; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || [ -x /usr/sbin/$$cmd ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/tmp/wxsite-apt.log 2>&1 \
	      || { tail -20 /tmp/wxsite-apt.log; exit 1; }; \
	  else \
	    echo "missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

test: $(STAMP) system-deps
	$(BIN)/pytest -q

serve: $(STAMP)
	$(BIN)/gunicorn -c python:wxsite.gunicorn_conf wsgi:app

bench: $(STAMP) system-deps
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
