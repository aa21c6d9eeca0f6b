# The pgtrail image: one image for every pgtrail command (install, consume, sink, history, ...).
# Build from the repository root:   docker build -t pgtrail .
# Used by deploy/compose.yaml; operator notes in docs/deploy.md.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/pgtrail
# .dockerignore admits only what the wheel needs, so this copy is small and never includes
# .pgtrail/ (local database files) or .venv/.
COPY . /src
RUN /opt/pgtrail/bin/pip install /src

FROM python:3.11-slim
RUN groupadd --system --gid 10001 pgtrail \
 && useradd --system --uid 10001 --gid pgtrail --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin pgtrail
COPY --from=build /opt/pgtrail /opt/pgtrail
# Metrics listen on every interface inside a container (the CLI's default is loopback, which
# nothing outside the container could scrape). The consumer's large-transaction spill files go
# to /tmp, in the container's writable layer.
ENV PATH=/opt/pgtrail/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PGTRAIL_METRICS_ADDR=0.0.0.0
USER pgtrail
WORKDIR /tmp
# 9641: consumer metrics (PGTRAIL_CONSUMER_METRICS_PORT), 9642: sink metrics (PGTRAIL_SINK_METRICS_PORT)
EXPOSE 9641 9642
ENTRYPOINT ["pgtrail"]
CMD ["--help"]
