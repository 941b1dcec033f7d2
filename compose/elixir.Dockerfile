# The compose file's `elixir` service: Elixir, the Elixir client's sources and the
# integration script. ELIXIR_BASE is the image it starts from:
#
# - elixir:1.14 (the default), from a public registry: Elixir is there already;
# - where no registry can be reached, the base made by compose/docker-setup.sh
#   (rustelixir-base:bookworm): Debian's elixir and erlang-nox (OTP 25, with ssl for TLS
#   distribution) are installed from the apt sources the base carries.
#
# Built with the repository's root as the context (see docker-compose.yml).
ARG ELIXIR_BASE=elixir:1.14
FROM ${ELIXIR_BASE}
SHELL ["/bin/sh", "-e", "-c"]
# hadolint ignore=DL3008
RUN if ! command -v elixir >/dev/null; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends elixir erlang-nox; \
        rm -rf /var/lib/apt/lists/*; \
    fi
# Elixir wants a UTF-8 locale for its names and strings.
ENV LANG=C.UTF-8
WORKDIR /app
# The script compiles the client from its sources: no mix, no dependencies.
COPY elixir_client/lib elixir_client/lib
COPY compose/integration.exs compose/
CMD ["elixir", "compose/integration.exs"]
