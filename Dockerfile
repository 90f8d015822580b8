# The Journeys image: one image, two roles chosen by the command.
#   docker run IMAGE                   -> `journeys worker` (the default)
#   docker run IMAGE journeys serve    -> the HTTP ingest API
# Configuration comes only from the environment (journeys/settings.py); see docs/deployment.md.

FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    JOURNEYS_HOME=/var/lib/journeys

# A fixed numeric uid/gid so orchestrators can check "runAsNonRoot" without a passwd lookup.
RUN groupadd --system --gid 10001 journeys \
    && useradd --system --uid 10001 --gid journeys --home-dir /home/journeys --create-home \
       --shell /usr/sbin/nologin journeys \
    && install -d -o journeys -g journeys /var/lib/journeys

WORKDIR /app

# The package itself (runtime dependencies only: no dev, no embedded extras).
COPY pyproject.toml README.md ./
COPY journeys/ journeys/
COPY workflows/ workflows/
COPY activities/ activities/
COPY starter/ starter/
COPY worker.py ./
RUN pip install . \
    && rm -rf build ./*.egg-info

# Read at run time from the working directory: the worker applies them at start.
COPY migrations/ migrations/

USER 10001:10001

CMD ["journeys", "worker"]
