FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY config config
COPY annotation annotation
COPY calibration calibration
COPY rewards rewards
COPY training training
COPY frontend frontend
COPY manage.py ./
# The GPU worker needs the `train` extra; the web image stays small without it.
ARG EXTRAS=""
RUN pip install --no-cache-dir -e ".${EXTRAS}"
