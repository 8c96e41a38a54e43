# persona — two commands:
#   make demo   train the example persona (first run), serve it with vLLM, open the Chainlit chat
#   make test   the whole test suite, real XTuner, vLLM and browser included
CARD     ?= cards/xiaocong.yaml
API_PORT ?= 8000
UI_PORT  ?= 8001
PYTHON   ?= $(shell command -v python3.11 || command -v python3)
VENV     := .venv
APP      := $(VENV)/.persona-app-stamp

.PHONY: demo test test-fast test-gpu setup browser postgresql clean-venv

demo: $(APP)
	$(VENV)/bin/persona up --card $(CARD) --api-port $(API_PORT) --ui-port $(UI_PORT)

# A test that skips fails `make test` unless tests/conftest.py lists it with its reason; the
# slowest tests are printed at the end.
test: $(APP) browser postgresql
	$(VENV)/bin/persona setup --env all,gguf
	$(VENV)/bin/python -m pytest -m "not gpu" --no-silent-skips --durations=25 $(PYTEST_ARGS)

test-fast: $(APP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-gpu: $(APP)
	$(VENV)/bin/python -m pytest -m gpu $(PYTEST_ARGS)

setup: $(APP)
	$(VENV)/bin/persona setup

# The app environment: CLI, UI, evals and tests (training and serving get their own, see persona/envs.py).
$(APP): requirements/app.txt requirements/deploy-check.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --progress-bar off -q -r requirements/app.txt -r requirements/deploy-check.txt -e .
	touch $@

# Browser tests drive Debian's Chromium, never a downloaded browser.
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null; }

# The chat's PostgreSQL tests start a throw-away server from Debian's package (tests/postgres.py).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq postgresql >/dev/null; }

clean-venv:
	rm -rf $(VENV)
