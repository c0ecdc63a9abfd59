# Pulse: one image for the API (`pulse serve`, the default), the worker (`pulse worker`)
# and the schema upgrade (`pulse migrate`). docker-compose.yml runs all three on PostgreSQL.
#
#   docker build -t pulse .
#   docker run --init -p 8000:8000 -e PULSE_SECRET_KEY=... -e PULSE_DATABASE_URL=... pulse
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The working directory matters: app/core/migrations.py finds migrations/ in the current
# folder when the app package is installed into site-packages.
WORKDIR /srv/pulse

# README.m[d]: pyproject.toml names README.md; the wildcard lets the build work without it.
COPY pyproject.toml alembic.ini README.m[d] ./
COPY app ./app
COPY migrations ./migrations

RUN pip install --no-cache-dir . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --user-group --home-dir /srv/pulse --no-create-home pulse \
    && mkdir mail \
    && chown pulse:pulse mail

# The code stays owned by root; the service user may write only mail/ (the default
# file:// email folder). Configure a real database and email server through PULSE_*.
USER pulse

# Production refuses to start without PULSE_SECRET_KEY (32+ random characters).
ENV PULSE_ENV=production

EXPOSE 8000

# Liveness only (/readyz also checks the database and migrations). No curl in slim images.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["pulse", "serve", "--host", "0.0.0.0", "--port", "8000"]
