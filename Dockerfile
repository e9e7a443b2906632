FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# bubblewrap: the code verifier runs untrusted candidate code under `bwrap` (rewards/sandbox.py).
# Without it the verifier refuses to run unless a project allows weaker isolation.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap \
    && rm -rf /var/lib/apt/lists/*
# An unprivileged user for every service: bwrap then makes a user namespace for the candidate code,
# and a sandbox escape lands as uid 10001 with no capabilities, not as root.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /home/app --create-home \
       --shell /usr/sbin/nologin app
COPY pyproject.toml README.md ./
# The lock: every dependency pinned (pyproject.toml keeps ranges); refreshed by scripts/lock.sh.
COPY requirements requirements
COPY config config
COPY annotation annotation
COPY calibration calibration
COPY rewards rewards
COPY training training
COPY frontend frontend
COPY manage.py ./
# The GPU worker needs the `train` extra; the web image stays small without it.
ARG EXTRAS=""
RUN pip install --no-cache-dir -c requirements/constraints.txt -e ".${EXTRAS}"
# The code stays root-owned (read-only to the services); only the data directories are the app's:
# media and runs (the compose volumes: uploads, trained models), var (beat schedule) and collected
# static files.
RUN mkdir -p /data/media /data/runs /app/var /app/staticfiles \
    && chown -R app:app /data/media /data/runs /app/var /app/staticfiles
USER app
