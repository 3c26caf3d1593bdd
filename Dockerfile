# syntax=docker/dockerfile:1
# The qms image: `qms serve` as N stateless replicas behind a Service, Redis
# elsewhere (QMS_REDIS_URL is required: the embedded Redis is refused).
#
#   docker build -t qms:0.1.0 .                       # the server (default target)
#   docker build --target loadtest -t qms:0.1.0-loadtest .   # + locust, for the load-test Job
#
# Runs as UID/GID 10001 with a read-only root filesystem; only /tmp needs to
# be writable (an emptyDir in Kubernetes). See k8s/README.md.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---------------------------------------------------------------- build
# The wheel of this checkout, then one venv per target with its extras.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qms ./qms
COPY queue_core ./queue_core
COPY dispatcher ./dispatcher
COPY ticketing ./ticketing
COPY displays ./displays
COPY loadtests ./loadtests
RUN pip wheel --no-deps --wheel-dir /wheels .

# The postgres extra: the archive in PostgreSQL (QMS_ARCHIVE_URL), which
# replicas in a cluster share; the load extra adds locust.
FROM build AS venv
RUN python -m venv /opt/qms \
    && /opt/qms/bin/pip install "$(ls /wheels/qms-*.whl)[postgres]"

FROM build AS venv-loadtest
RUN python -m venv /opt/qms \
    && /opt/qms/bin/pip install "$(ls /wheels/qms-*.whl)[postgres,load]"

# ---------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS base
ENV PATH=/opt/qms/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QMS_REQUIRE_REDIS_URL=1 \
    HOME=/tmp
RUN groupadd --system --gid 10001 qms \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp qms
WORKDIR /tmp
EXPOSE 8000
USER 10001:10001

FROM base AS loadtest
COPY --from=venv-loadtest /opt/qms /opt/qms
ENTRYPOINT ["python", "-m", "locust"]
CMD ["--help"]

# The default target, last.
FROM base AS runtime
COPY --from=venv /opt/qms /opt/qms
ENTRYPOINT ["qms"]
CMD ["serve", "--config", "/etc/qms/halls", "--host", "0.0.0.0", "--port", "8000", \
     "--data-dir", "/tmp/qms-data"]
