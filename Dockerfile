# The rustelixir node in a container: the extension is built with maturin in a build stage
# (Rust toolchain included), and only the wheel goes into the runtime image, beside Debian's
# epmd (erlang-base) so that BEAM nodes in other containers can look the node up.

FROM python:3.11-slim-bookworm AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
ARG RUST_VERSION=1.95.0
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
    | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
ENV PATH=/root/.cargo/bin:${PATH}
RUN pip install --no-cache-dir "maturin>=1.5,<2"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY native ./native
COPY rustelixir ./rustelixir
RUN maturin build --release --out /wheels

FROM python:3.11-slim-bookworm
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends erlang-base \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 rustelixir
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER rustelixir
# 4369: EPMD (the system's, started by the node); 9100: the node's distribution port.
EXPOSE 4369 9100
ENTRYPOINT ["rustelixir"]
CMD ["serve", "--name", "rustelixir@rustelixir", "--listen-host", "0.0.0.0", "--port", "9100", "--epmd", "system"]
