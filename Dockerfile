# syntax=docker/dockerfile:1
# Weir in one image: the OpenResty edge and one sidecar per visible GPU, started by `weir up`.
# onnxruntime-gpu 1.31 is built against CUDA 13 and cuDNN 9, hence this base image.
# Build:  docker build -t weir .
# Run:    docker run --gpus all --memory 8g --cpus 4 -p 8080:8080 weir
#         (the admin API stays on the container's loopback: `docker exec` into it for kill switches)

# The sample models are trained at build time, so nothing is downloaded when the container runs.
FROM python:3.12-slim AS models
WORKDIR /build
COPY constraints.txt ./
RUN pip install --no-cache-dir -c constraints.txt numpy onnx scikit-learn
COPY models/build_samples.py models/
RUN python models/build_samples.py --repository /build/repository

FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# OpenResty from its official apt repository; Python and a compiler for meinheld's C extension.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl gnupg \
        python3 python3-venv python3-dev gcc \
    && curl -fsSL https://openresty.org/package/pubkey.gpg \
        | gpg --dearmor -o /usr/share/keyrings/openresty.gpg \
    && echo "deb [signed-by=/usr/share/keyrings/openresty.gpg] http://openresty.org/package/ubuntu noble main" \
        > /etc/apt/sources.list.d/openresty.list \
    && apt-get update \
    && apt-get install -y --no-install-recommends openresty \
    && rm -rf /var/lib/apt/lists/*

ENV PATH=/opt/weir/.venv/bin:/usr/local/openresty/bin:$PATH \
    WEIR_RUNTIME_DIR=/var/lib/weir \
    PYTHONUNBUFFERED=1
WORKDIR /opt/weir

COPY pyproject.toml constraints.txt README.md ./
COPY sidecar/ sidecar/
COPY scripts/ scripts/
# Editable: the `weir` tooling finds lua/ and nginx/templates/ beside its own source.
# meinheld goes in without its stale greenlet<0.5 pin (greenlet 3 serves it fine).
RUN python3 -m venv .venv \
    && .venv/bin/pip install --no-cache-dir -c constraints.txt -e . \
    && .venv/bin/pip install --no-cache-dir -c constraints.txt --no-deps meinheld

COPY nginx/ nginx/
COPY lua/ lua/
COPY release.yaml ./
COPY --from=models /build/repository/ models/

RUN useradd --system --uid 10001 --home-dir /var/lib/weir --create-home weir
USER 10001

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/v2/health/ready"]
STOPSIGNAL SIGTERM
# The image runs `weir`: CMD is the command line (`weir up FILE` here); Kubernetes manifests
# from `weir k8s` name `command: [weir]` and give their own (`edge FILE`, `sidecar ...`).
ENTRYPOINT ["weir"]
CMD ["up", "/opt/weir/release.yaml"]
