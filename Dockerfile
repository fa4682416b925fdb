# syntax=docker/dockerfile:1
# One image for all four Kaenkhun services and their one-shot migration; docker-compose.yml runs
# `kaenkhun migrate` once, then `kaenkhun serve SERVICE` for each service.

# --- build: install the distribution (no dev extras) into a virtualenv -------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN python -m venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY ops ./ops
RUN pip install .

# --- runtime ----------------------------------------------------------------------
FROM python:3.11-slim

ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    KAENKHUN_DATA_DIR=/app/var

# A fixed, unprivileged uid/gid so volume ownership is predictable.
RUN groupadd --system --gid 10001 kaenkhun \
 && useradd --system --uid 10001 --gid kaenkhun --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin kaenkhun \
 && mkdir -p /app/var \
 && chown -R kaenkhun:kaenkhun /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER kaenkhun:kaenkhun

EXPOSE 8001 8002 8003 8004

# Compose gives each service its own command (`kaenkhun migrate`, `kaenkhun serve SERVICE`).
CMD ["kaenkhun", "--help"]
