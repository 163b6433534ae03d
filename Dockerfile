# syntax=docker/dockerfile:1
#
# One image for every production process:
#   docker run IMAGE                          the API (brandgraph serve on :8000, WEB_CONCURRENCY processes)
#   docker run IMAGE brandgraph worker        Dramatiq worker (--processes 2 --threads 8)
#   docker run IMAGE brandgraph scheduler     periodic jobs (only enqueues)
#   docker run IMAGE brandgraph migrate       schema migrations, as DATABASE_URL (the owner)
# BRANDGRAPH_ENV=production: DATABASE_URL (or DATABASE_APP_URL), REDIS_URL,
# BRANDGRAPH_SECRET_KEY and DATABASE_APP_PASSWORD (or DATABASE_APP_URL) must be set;
# nothing embedded is ever started. See the README.

# --- builder: the project and its dependencies in a virtual environment ---------------
FROM python:3.11-slim AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build

# Dependencies first, in their own layer: rebuilt only when pyproject.toml changes.
# Only [project].dependencies: no `embedded` extra (production never starts embedded
# PostgreSQL or Redis) and no `dev` extra.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
 && pip install --upgrade pip \
 && pip install -r requirements.txt

# The project itself, as a wheel (README.md is the package's readme; the build needs it).
COPY README.md ./
COPY src ./src
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip install --no-deps /wheels/brandgraph-*.whl \
 && brandgraph --help > /dev/null

# --- runtime ----------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

RUN groupadd --system --gid 10001 brandgraph \
 && useradd --system --uid 10001 --gid brandgraph --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin brandgraph

# Same base image and path in both stages, so the venv's interpreter links stay valid.
COPY --from=builder /opt/venv /opt/venv

# Migrations are read at run time from BRANDGRAPH_ROOT (domain.config.project_root):
# alembic.ini, the Alembic revisions and the SQL files they run. Owned by root: read-only
# for the app.
WORKDIR /app
COPY alembic.ini ./
COPY alembic ./alembic
COPY migrations ./migrations

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BRANDGRAPH_ROOT=/app \
    BRANDGRAPH_ENV=production \
    WEB_CONCURRENCY=2

# `brandgraph serve` runs WEB_CONCURRENCY API processes on its port: one per core in production
# (docker run -e WEB_CONCURRENCY=<cores>); the supervisor, PID 1, stops them all on SIGTERM.

USER brandgraph
EXPOSE 8000

# /healthz of the API; python, as the slim image has no curl. The same image runs the
# worker and the scheduler, which serve no HTTP: for them (PID 1 without `serve`) the check
# passes, so an orchestrator that restarts unhealthy containers leaves them alone. Give
# those their own liveness check if you want one. Reads --port from PID 1's arguments.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; a = open('/proc/1/cmdline', 'rb').read().decode().split('\\0'); 'serve' in a or sys.exit(0); p = a[a.index('--port') + 1] if '--port' in a else '8000'; urllib.request.urlopen('http://127.0.0.1:' + p + '/healthz', timeout=4)"]

CMD ["brandgraph", "serve", "--host", "0.0.0.0", "--port", "8000"]
