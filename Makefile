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

.PHONY: install demo test lint apt bench clean gpu-check checkov

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
	$(BIN)/mypy

# Two workers, each test file on one worker (its module fixtures made once): most tests wait on
# brokers, servers and subprocesses, so two at a time halve the suite's time on two cores without
# making any test slower (durations per test unchanged). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
test: install apt lint checkov
	$(BIN)/python -m pytest --durations=15 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

# checkov over deploy/k8s with deploy/.checkov.yaml (its skips say why), in a venv of its own: checkov
# pins packaging 23.2 and networkx 2.6, which would downgrade the test venv. Part of `make test`
# (~30 s to install on a fresh clone, 3 s to run).
CHECKOV_VENV ?= .venv-checkov
checkov:
	test -x $(CHECKOV_VENV)/bin/checkov || { $(PYTHON) -m venv $(CHECKOV_VENV) && $(CHECKOV_VENV)/bin/pip install -q 'checkov==3.3.30'; }
	$(CHECKOV_VENV)/bin/checkov --config-file deploy/.checkov.yaml

# The GPU stage proven and measured in one run (bench/gpu_check.py): CUDA tests, then the bench,
# into $(OUT)/gpu_check.json and $(OUT)/gpu_check.log. Runs under the machine's own python3 (the
# project need not be installed); wheels of what it lacks (bench/gpu_wheels.txt) are taken from
# .whl/ when that folder exists. GPU_BUDGET (seconds, default 450) bounds the run: sizes are
# dropped in priority order to fit, and SIGINT 20 s after it keeps what was measured. Without
# CUDA it is a dry run on the CPU with tiny sizes.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
GPU_BUDGET ?= 450
GPU_CHECK_ARGS ?=  # e.g. --no-tests for a shorter rerun of the bench alone
gpu-check:
	@test -n "$(OUT)" || { echo "usage: make gpu-check OUT=dir"; exit 2; }
	@mkdir -p "$(OUT)"
	if [ -d .whl ]; then \
	  $(GPU_PYTHON) -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
	    --target /tmp/dinostream-wheels .whl/*.whl || exit 1; \
	  export PYTHONPATH=/tmp/dinostream-wheels$${PYTHONPATH:+:$$PYTHONPATH}; \
	fi; \
	PYTHONUNBUFFERED=1 timeout -s INT -k 10 $$(( $(GPU_BUDGET) + 20 )) \
	  $(GPU_PYTHON) bench/gpu_check.py --out "$(OUT)" --budget-s $(GPU_BUDGET) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) dinostream-data .pytest_cache
