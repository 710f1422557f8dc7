# syntax=docker/dockerfile:1.7
# botmox server image: wheels are built in one stage, a slim runtime installs only them.
#
#   docker build -t botmox .                                   # supabase + s3 + minio plugins
#   docker build --build-arg BOTMOX_PLUGINS="rtdb" -t botmox .  # another choice ("" = none)
#
# Every setting comes from the environment (BOTMOX_*, DATA_BACKEND, plugin options; see
# `botmox config show` and docs/operations.md). The data directory is a volume.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# Plugins under plugins/, named without "botmox-", separated by spaces.
ARG BOTMOX_PLUGINS="supabase s3 minio"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY plugins ./plugins
COPY deploy/image ./deploy/image
RUN sh deploy/image/build-wheels.sh /wheels ${BOTMOX_PLUGINS}

FROM ${PYTHON_IMAGE} AS runtime
ARG BOTMOX_PLUGINS="supabase s3 minio"
LABEL org.opencontainers.image.title="botmox" \
      org.opencontainers.image.description="Bot-Mox control plane server (botmox serve)" \
      org.opencontainers.image.licenses="MIT" \
      io.botmox.plugins="${BOTMOX_PLUGINS}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/botmox/bin:$PATH \
    BOTMOX_HOST=0.0.0.0 \
    BOTMOX_PORT=8000 \
    BOTMOX_DATA_DIR=/var/lib/botmox \
    BOTMOX_LOG_FORMAT=json
RUN groupadd --system --gid 10001 botmox \
 && useradd --system --uid 10001 --gid botmox --home-dir /var/lib/botmox --no-create-home \
      --shell /usr/sbin/nologin botmox \
 && mkdir -p /var/lib/botmox \
 && chown botmox:botmox /var/lib/botmox \
 && chmod 0750 /var/lib/botmox
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    --mount=type=bind,source=deploy/image/install-wheels.sh,target=/install-wheels.sh \
    sh /install-wheels.sh /wheels /opt/botmox python
VOLUME ["/var/lib/botmox"]
WORKDIR /var/lib/botmox
USER 10001:10001
EXPOSE 8000
# Liveness only (the process answers); readiness (/api/v1/health/ready) is for the proxy and
# the deploy script, so a database outage does not make Docker restart every replica.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('BOTMOX_PORT', '8000') + '/api/v1/health/live', timeout=2)"]
CMD ["botmox", "serve"]
