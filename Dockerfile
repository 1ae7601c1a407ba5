# The ledger service's image: one image for every process of a deployment
# (`ledger http`, `ledger writer`, `ledger worker`, `ledger db upgrade`, or
# `ledger serve` for all in one); compose.yaml runs each as its own service.
# docs/deployment.md says how to build, configure and run it.
#
# No secret is baked in: keys, passwords and URLs come from the environment
# or mounted files at run time.
FROM python:3.11-slim

# No .pyc files written at run time (the image is read-only for the user),
# logs unbuffered, pip without its cache or version check.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The service runs as this user, never as root.
ARG LEDGER_UID=10001
RUN groupadd --system --gid "${LEDGER_UID}" ledger \
    && useradd --system --uid "${LEDGER_UID}" --gid ledger --home-dir /var/lib/ledger \
        --create-home --shell /usr/sbin/nologin ledger

WORKDIR /app

# The locked dependencies first: this layer is rebuilt only when the lock changes.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --requirement requirements/runtime.txt

# Then the service. Installed in place (editable, no dependencies: the lock
# has them all) because the migrations are read from /app/migrations beside
# the packages, as in a checkout.
COPY pyproject.toml README.md ./
COPY domain domain
COPY application application
COPY projections projections
COPY interface interface
COPY benchmarks benchmarks
COPY migrations migrations
RUN pip install --no-deps --editable . \
    && python -m compileall -q domain application projections interface benchmarks

# Data the service writes (without SMTP: emails; guard notifications; in
# local mode a generated audit key): a volume in compose.yaml.
ENV LEDGER_DATA_DIR=/var/lib/ledger \
    LEDGER_HOST=0.0.0.0 \
    LEDGER_PORT=8000
USER ledger:ledger
EXPOSE 8000

# Liveness of the HTTP processes (`ledger http`, `ledger serve`); compose.yaml
# gives the writer and the worker checks of their own. The standard library
# only: the slim image has no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LEDGER_PORT', '8000') + '/healthz', timeout=2)"]

ENTRYPOINT ["ledger"]
CMD ["http"]
