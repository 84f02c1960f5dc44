# syntax=docker/dockerfile:1
# One image for every component: the services, the edge agent, the operator and the jobs.
# The entry point is `smartcity`; Kubernetes manifests give the sub-command, e.g.
#   docker run --rm IMAGE serve monitoring --config /etc/smartcity/config.yaml

ARG PYTHON=3.11

# -- build: install the platform and its dependencies into a virtual environment ------------
FROM python:${PYTHON}-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/smartcity
ENV PATH=/opt/smartcity/bin:$PATH
WORKDIR /src
# Dependencies first, so that a code change does not download them again.
COPY pyproject.toml setup.py README.md ./
RUN pip install --upgrade pip setuptools \
 && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt
COPY src ./src
COPY services ./services
COPY agents ./agents
COPY plugins ./plugins
COPY operators ./operators
RUN pip install --no-deps . && smartcity version

# -- run: the virtual environment on a slim Python, as a non-root user -----------------------
FROM python:${PYTHON}-slim-bookworm
LABEL org.opencontainers.image.title="smartcity" \
      org.opencontainers.image.description="Da Nang smart-city platform: services, edge agent, operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The user id the operator's manifests and the chart run as (runAsUser: 10001).
RUN groupadd --system --gid 10001 smartcity \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/smartcity \
            --shell /usr/sbin/nologin smartcity \
 && mkdir -p /var/lib/smartcity /etc/smartcity \
 && chown 10001:10001 /var/lib/smartcity
COPY --from=build /opt/smartcity /opt/smartcity
ENV PATH=/opt/smartcity/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /var/lib/smartcity
# gRPC (and grpc.health.v1), Prometheus metrics, the operator's liveness endpoint.
EXPOSE 50051 9464 8080
ENTRYPOINT ["smartcity"]
CMD ["--help"]
