# The two commands a newcomer needs: `make run` and `make test`.
# Both create .venv on first use and install what they need into it, and build the web app (app/,
# served by the node at /app/); `make test` also installs Debian's chromium for the browser tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# the web app: `npm ci` when the lock file is newer than the last install, `npm run build` when a
# source or the lock is newer than the build (app/dist/index.html)
APP_INSTALLED := app/node_modules/.gridchain-installed
APP_BUILT := app/dist/index.html
APP_SOURCES := $(shell find app/src app/public -type f 2>/dev/null) app/index.html app/vite.config.js \
	app/package.json app/package-lock.json
# the browser tests drive Debian's chromium through its chromedriver (never a downloaded browser)
CHROMIUM := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: run test test-quick bench clean app browser

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

$(APP_INSTALLED): app/package-lock.json
	@command -v npm >/dev/null || { echo "make app: npm not found; install Node.js 20 or newer with npm" >&2; exit 1; }
	cd app && npm ci --no-audit --no-fund
	touch $(APP_INSTALLED)

$(APP_BUILT): $(APP_SOURCES) | $(APP_INSTALLED)
	cd app && npm run build
	touch $(APP_BUILT)

app: $(APP_BUILT)

# installs chromium and chromium-driver with apt when either is missing (as root, else with sudo)
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then as_root=""; elif command -v sudo >/dev/null; then as_root=sudo; \
	  else echo "make test: the browser tests need Debian's chromium and chromium-driver; run as root: apt-get install chromium chromium-driver" >&2; exit 1; fi; \
	  echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	  { $$as_root apt-get update -q && $$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; } \
	    && [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ] \
	    || { echo "make test: could not install chromium and chromium-driver with apt-get; install them as root, then run make test again" >&2; exit 1; }; \
	fi

# the demo, and the network and web app left up after its day until Ctrl-C; the day runs from 06:00
# so that, when it ends, the chain's clock is at about 08:00 at normal speed: the households' PV is
# rising, and a newcomer in the browser has surplus to sell
run: $(STAMP) app
	$(BIN)/gridchain demo --keep --start-hour 6

test: $(STAMP) app browser
	$(BIN)/python -m pytest

# the suite without the multi-process tests marked slow: a few minutes, for while you work
test-quick: $(STAMP) app
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m bench.all

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis app/node_modules app/dist
