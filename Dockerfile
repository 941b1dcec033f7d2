# The rustelixir node in a container. It builds two ways:
#
# - From public images (the default): the wheel is built from source with maturin in the
#   `wheel` stage (a Rust toolchain is installed there), and the runtime is
#   python:3.11-slim-bookworm with the wheel and Debian's epmd.
#
#     docker build -t rustelixir:0.1.0 .
#
# - Where no image registry can be reached: from a base image made locally
#   (compose/docker-setup.sh makes rustelixir-base:bookworm with mmdebstrap), with the wheel
#   built on the host, as no Rust image is at hand. Nothing is compiled in the image; Python
#   3.11 and epmd come from Debian's packages (the base carries the host's apt sources).
#
#     maturin build --release --out compose/wheels
#     docker build --build-arg BASE=rustelixir-base:bookworm --build-arg WHEEL=compose/wheels -t rustelixir:0.1.0 .
#
# BASE: the image both stages start from (a Debian bookworm, with or without Python).
# WHEEL: a directory of the build context holding the rustelixir wheel and those of its
# `metrics` extra (prometheus-client); empty: build it here and fetch them from PyPI.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS wheel
ARG WHEEL=
ARG RUST_VERSION=1.95.0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The toolchain only when the wheel is built here: with WHEEL this layer installs nothing.
# hadolint ignore=DL3008
RUN if [ -z "$WHEEL" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends build-essential ca-certificates curl \
        && rm -rf /var/lib/apt/lists/* \
        && curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
           | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}" \
        && /root/.cargo/bin/cargo --version \
        && pip install --no-cache-dir "maturin>=1.5,<2"; \
    fi
WORKDIR /src
# .dockerignore keeps build output (native/target, virtualenvs) out of the context.
COPY . .
RUN mkdir /wheels \
    && if [ -n "$WHEEL" ]; then \
        cp "$WHEEL"/*.whl /wheels/; \
    else \
        PATH=/root/.cargo/bin:$PATH maturin build --release --out /wheels \
        && pip download --no-cache-dir --no-deps --dest /wheels "prometheus-client>=0.20,<1"; \
    fi \
    && ls /wheels/rustelixir-*.whl /wheels/prometheus_client-*.whl

FROM ${BASE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# erlang-base for epmd (BEAM nodes in other containers look the node up through it), and
# Debian's Python 3.11 when the base has no Python that makes virtualenvs (the local base). The node runs from a
# virtualenv, so that the wheel installs the same way on both bases.
# hadolint ignore=DL3008
RUN packages=(erlang-base) \
    && if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then packages+=(python3 python3-venv); fi \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/rustelixir \
    && useradd --create-home --uid 10001 rustelixir
COPY --from=wheel /wheels /wheels
# --no-index: every wheel is at hand (the metrics extra's included), no package index need
# be reachable.
RUN wheel=$(ls /wheels/rustelixir-*.whl) \
    && /opt/rustelixir/bin/pip install --no-index --no-cache-dir --find-links /wheels "${wheel}[metrics]" \
    && rm -rf /wheels
ENV PATH=/opt/rustelixir/bin:${PATH} LANG=C.UTF-8
USER rustelixir
# 4369: EPMD; 9100: the node's distribution port; 9200: /metrics and /healthz (the default
# command's).
EXPOSE 4369 9100 9200
# Healthy while the node serves (/healthz: 503 while it starts or stops). A command of
# your own keeps this check only with --metrics-port 9200.
HEALTHCHECK --interval=2s --timeout=2s --start-period=5s --retries=15 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9200/healthz', timeout=1)"]
# epmd first, listening on every interface of the container: left to itself, the node
# would start one bound to 127.0.0.1 (`--epmd system` starts it with `-address`), which
# BEAM nodes in other containers cannot reach. The node then registers with it.
ENTRYPOINT ["/bin/sh", "-c", "epmd -daemon && exec rustelixir \"$@\"", "rustelixir"]
CMD ["serve", "--name", "rustelixir@rustelixir", "--listen-host", "0.0.0.0", "--port", "9100", "--epmd", "system", \
     "--metrics-host", "0.0.0.0", "--metrics-port", "9200"]
