# A raylite node image: python:3-slim with raylite installed. One image for the head and
# the nodes; the command says which (docs/deploy.md). Build it from the repository's root:
#
#     docker build -t raylite .
#     docker run --init --shm-size=2g --network host \
#         -e RAYLITE_CLUSTER_TOKEN=<hex> raylite start --head --host 0.0.0.0 \
#         --object-store-memory 1500000000 --block
#
# tests/cli/test_deploy_files.py checks the command below against the CLI's flags (this
# file is not built by the project's CI: there is no container runtime there).
FROM python:3-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

# tini as PID 1: it forwards SIGTERM to `raylite start --block` (which then stops its
# daemon and workers) and reaps any process orphaned inside the container.
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

COPY pyproject.toml README.md /tmp/raylite-src/
COPY src /tmp/raylite-src/src
RUN pip install --no-cache-dir /tmp/raylite-src && rm -rf /tmp/raylite-src
# What your program imports must be in the image too (every node unpickles its functions
# and values): add it here, e.g.  RUN pip install --no-cache-dir numpy

RUN useradd --create-home --uid 1000 raylite
USER raylite
WORKDIR /home/raylite

# 6380: the head (its GCS and node daemon); 10001: Ray's client port (ray://HOST:10001).
# Node daemons, workers and drivers listen on ports of their own choosing: nodes must reach
# each other on any port (host networking, or one pod network as in deploy/k8s.yaml).
EXPOSE 6380 10001

ENTRYPOINT ["tini", "--", "raylite"]
CMD ["start", "--head", "--host", "0.0.0.0", "--block"]
