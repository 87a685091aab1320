# syntax=docker/dockerfile:1
#
# Gradient Health as a container image. Two final targets:
#
#   docker build -t gradient-health:cpu .                    # the default target: cpu (the last stage)
#   docker build --target gpu -t gradient-health:gpu .        # CUDA build of PyTorch
#
# Both run `gradhealth serve --host 0.0.0.0 --port 8000` as an unprivileged user, with the embedded
# SQLite database and the uploaded logs and models (/data/uploads) in the volume /data, and the
# local worker process(es) started by the API.
#
# SECURITY: binding 0.0.0.0 with API keys off is REFUSED at start-up (exit code 2). The operator
# must set either
#   GRADHEALTH_API_KEYS=name=<sha256 hex>[,...]    (entries from `gradhealth hash-key NAME KEY`)
# or, deliberately and only behind something that keeps strangers out,
#   GRADHEALTH_ALLOW_INSECURE=true
# e.g. docker run -p 127.0.0.1:8000:8000 -e GRADHEALTH_ALLOW_INSECURE=true -v gh-data:/data gradient-health:cpu
#
# DATABASE: the image sets GRADHEALTH_DATABASE_URL, which takes precedence over a plain DATABASE_URL;
# to use PostgreSQL set GRADHEALTH_DATABASE_URL=postgresql://user:password@host:5432/dbname.
#
# The torch pin below must match ./dev (tests/test_deploy.py checks it).

ARG PYTHON_IMAGE=python:3.11-slim

# --- base: Python, an unprivileged user, the data directory ----------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 gradhealth \
 && useradd --system --uid 10001 --gid gradhealth --create-home --home-dir /home/gradhealth \
        --shell /usr/sbin/nologin gradhealth \
 && mkdir -p /data \
 && chown gradhealth:gradhealth /data
WORKDIR /home/gradhealth

# --- wheel: build the project's wheel once, for both targets ---------------------------------------
FROM base AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- gpu: PyTorch's CUDA 12 build (the host needs the NVIDIA driver and container toolkit) ---------
# The CUDA runtime libraries come with the wheel (nvidia-* packages), so a slim base is enough.
# CUDA_INDEX picks PyTorch's wheel index; check that it carries the pinned version
# (https://download.pytorch.org/whl/<index>/torch/) and change it with --build-arg CUDA_INDEX=cu126.
FROM base AS gpu
ARG CUDA_INDEX=cu128
RUN pip install "torch==2.13.0" --index-url "https://download.pytorch.org/whl/${CUDA_INDEX}"
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
ENV GRADHEALTH_DATABASE_URL=sqlite:////data/gradhealth.db \
    GRADHEALTH_UPLOAD_DIR=/data/uploads
VOLUME /data
EXPOSE 8000
USER gradhealth:gradhealth
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status == 200 else 1)"]
# Refused unless GRADHEALTH_API_KEYS or GRADHEALTH_ALLOW_INSECURE=true is set (see the top of this file).
CMD ["gradhealth", "serve", "--host", "0.0.0.0", "--port", "8000"]

# --- cpu: PyTorch's CPU build; the last stage, so the default target -------------------------------
FROM base AS cpu
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
COPY --from=wheel /wheels /wheels
RUN pip install /wheels/*.whl && rm -rf /wheels
ENV GRADHEALTH_DATABASE_URL=sqlite:////data/gradhealth.db \
    GRADHEALTH_UPLOAD_DIR=/data/uploads
VOLUME /data
EXPOSE 8000
USER gradhealth:gradhealth
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=4).status == 200 else 1)"]
# Refused unless GRADHEALTH_API_KEYS or GRADHEALTH_ALLOW_INSECURE=true is set (see the top of this file).
CMD ["gradhealth", "serve", "--host", "0.0.0.0", "--port", "8000"]
