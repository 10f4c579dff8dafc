# One image for every mm-bronze role: `serve --http`, `serve --sftp`, `serve --consumers`, ...
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mm_bronze ./mm_bronze
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# Non-root; its home holds the data directory (embedded PostgreSQL, local storage) when
# no external PostgreSQL / object storage is configured.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /var/lib/mm-bronze mmbronze
COPY --from=build /install /usr/local
USER mmbronze
WORKDIR /var/lib/mm-bronze
ENV MM_BRONZE_DATA_DIR=/var/lib/mm-bronze/data \
    MM_BRONZE_HTTP_HOST=0.0.0.0 \
    MM_BRONZE_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8000 2222
ENTRYPOINT ["mm-bronze"]
CMD ["serve", "--all"]
