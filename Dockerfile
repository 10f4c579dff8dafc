# One image for every mm-bronze role: `serve --http`, `--sftp`, `--mllp`, `--consumers`, `--all`.
# Installs exactly what uv.lock pins (runtime dependencies only, no test tools).
FROM python:3.11-slim AS build
ENV UV_PROJECT_ENVIRONMENT=/opt/mm-bronze \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
# A C compiler and expat's header build the validation fast paths' C modules (setup.py); they
# stay in this stage. The distribution's current packages: they only build, the image does
# not carry them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libexpat1-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /src
COPY pyproject.toml setup.py uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY mm_bronze ./mm_bronze
RUN uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim
# Non-root; its home holds the data directory (embedded PostgreSQL, local storage, SFTP users,
# host key and upload spool) when no external PostgreSQL / object storage is configured.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/mm-bronze mmbronze \
    && install -d -o mmbronze -g mmbronze /var/lib/mm-bronze/data
COPY --from=build /opt/mm-bronze /opt/mm-bronze
USER 10001:10001
WORKDIR /var/lib/mm-bronze
# Doors listen on every interface of the container. MLLP has no sender authentication of its
# own, so it admits private networks only: narrow MM_BRONZE_MLLP_ALLOWED_PEERS to your
# interface engines, or use TLS client certificates (see the README).
ENV PATH=/opt/mm-bronze/bin:$PATH \
    MM_BRONZE_DATA_DIR=/var/lib/mm-bronze/data \
    MM_BRONZE_HTTP_HOST=0.0.0.0 \
    MM_BRONZE_SFTP_HOST=0.0.0.0 \
    MM_BRONZE_MLLP_HOST=0.0.0.0 \
    MM_BRONZE_MLLP_ALLOWED_PEERS='["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]' \
    MM_BRONZE_LOG_FORMAT=json \
    MALLOC_ARENA_MAX=2 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/mm-bronze/data"]
# HTTP, SFTP, MLLP
EXPOSE 8000 2222 2575
# Liveness of the HTTP door (roles without it override this, as compose.yaml does).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-m", "mm_bronze.healthcheck", "/healthz"]
ENTRYPOINT ["mm-bronze"]
CMD ["serve", "--all"]
