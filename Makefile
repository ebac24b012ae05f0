# make run  — set up and start the site (emulator mode when WX_APPID is not configured)
# make test — set up and run every test, browser tests included
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000

.PHONY: run test test-sqlite test-postgresql test-fast lint serve bench system-deps clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/flask --app wsgi wx run --port $(PORT)

# Browser and proxy tests need Debian's chromium and nginx; CJK and emoji fonts make the
# screenshots readable; ffmpeg makes voice notes playable; redis-server backs the
# several-hosts credential store tests; postgresql gives the engine tests a real server
# (initdb/pg_ctl in a temp dir, never the system cluster).
SYSTEM_PACKAGES ?= chromium nginx ffmpeg redis-server postgresql fonts-noto-cjk fonts-noto-color-emoji
system-deps:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing) >/tmp/wxsite-apt.log 2>&1 \
	      || { tail -20 /tmp/wxsite-apt.log; exit 1; }; \
	  else \
	    echo "missing Debian packages:$$missing — run: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

# The tests that touch data run a second time on PostgreSQL (a server the tests start);
# media's storage backends and codecs do not depend on the engine, so only its rows do.
PG_TESTS ?= tests/auth tests/pay tests/inbound tests/jobs tests/media/test_upload.py tests/media/test_voice.py tests/test_store.py tests/test_store_merge.py \
	tests/test_store_concurrency.py tests/test_maintenance.py tests/test_credentials_site.py \
	tests/test_cli.py tests/test_hosts_doctor.py tests/test_hot_path.py tests/wechat/test_credentials.py \
	tests/wechat/test_credentials_faults.py tests/wechat/test_credentials_force.py \
	tests/wechat/test_credential_store_contract.py tests/jssdk tests/test_site.py \
	tests/media/test_slow_wechat.py tests/test_bad_inputs.py tests/test_hosts_header.py tests/test_clock.py \
	tests/test_fuzz.py

# The two runs overlap: most of a test's time is spent waiting on servers, not on a CPU.
# For the same reason the SQLite run is split over two pytest processes (a test file stays
# on one, with its module's servers): 9:20 alone becomes 5:40 on this 2-core machine.
SQLITE_WORKERS ?= -n 2 --dist loadfile
test: $(STAMP) system-deps
	@mkdir -p test-artifacts
	@echo "PostgreSQL run in the background, its report after SQLite's (test-artifacts/postgresql.log)"
	@WXSITE_TEST_ENGINE=postgresql $(BIN)/pytest -q -p no:cacheprovider $(PG_TESTS) \
	  > test-artifacts/postgresql.log 2>&1 & pg=$$!; \
	$(BIN)/pytest -q $(SQLITE_WORKERS); sqlite=$$?; \
	wait $$pg; postgresql=$$?; \
	echo "== PostgreSQL: the tests that touch data, again"; cat test-artifacts/postgresql.log; \
	exit $$(( sqlite || postgresql ))

# One engine only: `make test-sqlite`, or `make test-postgresql` (the PG_TESTS subset).
test-sqlite: $(STAMP) system-deps
	$(BIN)/pytest -q $(SQLITE_WORKERS)

test-postgresql: $(STAMP) system-deps
	WXSITE_TEST_ENGINE=postgresql $(BIN)/pytest -q $(PG_TESTS)

# Quick loop while coding: no browser, no gunicorn/nginx/Redis/PostgreSQL processes.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not browser and not slow" --ignore=tests/engines

lint: $(STAMP)
	$(BIN)/pip install --quiet ruff black
	$(BIN)/ruff check .
	$(BIN)/black --check -q .

serve: $(STAMP)
	$(BIN)/gunicorn -c python:wxsite.gunicorn_conf wsgi:app

bench: $(STAMP)
	$(MAKE) system-deps SYSTEM_PACKAGES="$(SYSTEM_PACKAGES) wrk"
	$(BIN)/python bench/run.py
	$(BIN)/python bench/hosts.py
	$(BIN)/python bench/uploads.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
