# The two entry points the README opens with: `make demo` and `make test`.
# Both create .venv, install torch first (pinned: an unpinned torch pulls GBs of CUDA wheels),
# then the project. Override TORCH to pick another build, e.g. TORCH="torch==2.13.0 --index-url ...".
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.dinostream-installed
# Debian packages the tests need: the real peers (an RTSP server through gst-rtsp-server and
# python3-gi, headless Chromium for WebRTC and the dashboard, mosquitto for MQTT).
APT_PACKAGES ?= chromium mosquitto python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-rtsp-server-1.0 \
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad

.PHONY: install demo test lint apt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

apt:
	@if [ -n "$(APT_PACKAGES)" ]; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	fi

demo: install
	$(BIN)/dinostream demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install apt lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) dinostream-data .pytest_cache
