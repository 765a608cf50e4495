# convoy-stream worker image: dependencies installed at build time, runs as a non-root user.
#   docker build -t convoy-stream .
#   docker run -e KAFKA_BOOTSTRAP_SERVERS=... -p 5005:5005 convoy-stream
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/convoy-stream
WORKDIR /src
COPY pyproject.toml README.md ./
COPY convoy_stream ./convoy_stream
COPY bridges ./bridges
COPY tables ./tables
# The msk extra: AWS MSK IAM authentication (KAFKA_SASL_MECHANISM=OAUTHBEARER).
RUN /opt/convoy-stream/bin/pip install ".[msk]"

FROM python:3.11-slim
COPY --from=build /opt/convoy-stream /opt/convoy-stream
RUN useradd --system --uid 10001 --user-group --home-dir /data --create-home convoy
USER convoy
ENV PATH=/opt/convoy-stream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CONVOY_STREAM_BIND=0.0.0.0 \
    CONVOY_STREAM_PORT=5005 \
    CONVOY_STREAM_DATA_DIR=/data
WORKDIR /data
VOLUME /data
EXPOSE 5005
# 200 only when the worker can accept and process events (web/health.py).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['CONVOY_STREAM_PORT'], timeout=2)"
ENTRYPOINT ["convoy-stream"]
CMD ["worker"]
