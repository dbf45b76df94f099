# syntax=docker/dockerfile:1
# The decision service image: small, non-root, the example policies served by default.
#
#   docker build -t sharing-policy-engine .
#   docker run -p 8000:8000 sharing-policy-engine                       # the example policies
#   docker run -p 8000:8000 -v "$PWD/keys:/keys:ro" sharing-policy-engine \
#       --bundle https://bundles.example/policy.tar.gz --bundle-key /keys/signing.pub.pem
#
# Arguments after the image name are `engine serve` flags; every setting also has an
# ENGINE_* variable (docs/operating.md). EXTRAS picks optional parts: `bundles` (signature
# checks), `postgresql` (the audit trail in PostgreSQL).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=bundles
ARG OTLP_EXPORTER_VERSION=1.45.2
WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
COPY grammar ./grammar
COPY policies ./policies
# Wheels for the engine and everything it needs, so the final stage has no build tools or caches.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]" \
        "opentelemetry-exporter-otlp-proto-http==${OTLP_EXPORTER_VERSION}"

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# Installed from the wheels built above only: --no-index, so nothing is fetched here.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels /wheels/*.whl \
    && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin engine
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
ENTRYPOINT ["engine", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD []
