# syntax=docker/dockerfile:1
# Weir in one image: the nginx + Lua edge and one sidecar per visible GPU, started by `weir up`.
#
# BASE: NVIDIA's CUDA runtime image by default (onnxruntime-gpu 1.31 is built against CUDA 13
# and cuDNN 9); any Debian/Ubuntu image with apt works for CPU serving, e.g. a local Debian 12:
#   docker build -t weir .
#   podman build --format docker --network host --build-arg BASE=localhost/debian:12 -t weir .
# EDGE: auto (OpenResty's apt repository when it answers, else Debian's/Ubuntu's nginx with the
# Lua module), or force one with --build-arg EDGE=openresty / EDGE=distro.
# Behind a TLS-inspecting proxy, hand the build its CA bundle (used by pip and curl, never
# stored in a layer): --secret id=ca,src=/etc/ssl/certs/ca-certificates.crt
# Run:    docker run --gpus all --memory 8g --cpus 4 -p 8080:8080 weir
#         (the admin API stays on the container's loopback: `docker exec` into it for kill switches)
ARG BASE=nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

# Python, shared by every stage: the venv built below runs on the final stage's interpreter.
FROM ${BASE} AS python
ARG DEBIAN_FRONTEND=noninteractive
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# The sample models are trained at build time, so nothing is downloaded when the container runs.
FROM python AS models
WORKDIR /build
COPY constraints.txt ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv /build/venv \
    && /build/venv/bin/pip install --no-cache-dir -c constraints.txt numpy onnx scikit-learn \
        pillow onnxruntime-gpu prometheus-client pyyaml pydantic
# handwriting is trained through its own model class, which uses the sidecar's image decoding;
# its source files (model class, labels, sample image) join the built weights. Each sample's
# drift reference (reference.json) is counted as the sidecar counts (prometheus-client's
# bucket labels).
COPY models/ models/
COPY sidecar/ sidecar/
RUN PYTHONPATH=/build /build/venv/bin/python models/build_samples.py --repository /build/repository \
    && cp models/handwriting/config.yaml models/handwriting/model.py models/handwriting/seven.png \
        /build/repository/handwriting/

# Weir's venv: wheels only, no compiler (the default uvicorn worker needs none; the optional
# meinheld worker is not in the image).
FROM python AS venv
WORKDIR /opt/weir
# Dependencies first (pyproject's list, pinned by constraints.txt), so that a source change
# rebuilds only the last, quick layer.
COPY pyproject.toml constraints.txt ./
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && python3 -m venv .venv \
    && python3 -c "import tomllib; print(*tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies'], sep='\n')" > /tmp/requirements.txt \
    && .venv/bin/pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt
COPY README.md ./
COPY sidecar/ sidecar/
COPY scripts/ scripts/
# Editable: the `weir` tooling finds lua/ and nginx/templates/ beside its own source, which the
# final stage copies to this same path.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi \
    && .venv/bin/pip install --no-cache-dir --no-deps -e .

FROM python
ARG DEBIAN_FRONTEND=noninteractive
ARG EDGE=auto
# The edge: OpenResty from its own repository when reachable (or EDGE=openresty), else the
# distribution's nginx with the Lua module; Weir finds either at run time.
# hadolint ignore=SC1091
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export CURL_CA_BUNDLE=/run/secrets/ca; fi \
    && . /etc/os-release \
    && apt-get update \
    && apt-get install -y --no-install-recommends curl gnupg \
    && if [ "$EDGE" = openresty ] || { [ "$EDGE" = auto ] \
            && curl -fsS --max-time 20 -o /tmp/openresty.key https://openresty.org/package/pubkey.gpg; }; then \
        { [ -s /tmp/openresty.key ] || curl -fsS -o /tmp/openresty.key https://openresty.org/package/pubkey.gpg; } \
        && gpg --dearmor -o /usr/share/keyrings/openresty.gpg /tmp/openresty.key \
        && component=$([ "$ID" = ubuntu ] && echo main || echo openresty) \
        && echo "deb [signed-by=/usr/share/keyrings/openresty.gpg] http://openresty.org/package/$ID $VERSION_CODENAME $component" \
            > /etc/apt/sources.list.d/openresty.list \
        && apt-get update \
        && apt-get install -y --no-install-recommends openresty \
        && echo "weir image: edge is OpenResty" > /etc/weir-edge; \
    else \
        nginx=$(apt-cache show nginx-light >/dev/null 2>&1 && echo nginx-light || echo nginx) \
        && apt-get install -y --no-install-recommends "$nginx" libnginx-mod-http-lua \
            lua-resty-core lua-cjson \
        && echo "weir image: edge is the distribution's $nginx with the Lua module" > /etc/weir-edge; \
    fi \
    && apt-get purge -y --auto-remove gnupg \
    && rm -rf /var/lib/apt/lists/* /tmp/openresty.key \
    && cat /etc/weir-edge

ENV PATH=/opt/weir/.venv/bin:/usr/local/openresty/bin:$PATH \
    WEIR_RUNTIME_DIR=/var/lib/weir \
    WEIR_MODELS_DIR=/opt/weir/models \
    WEIR_EDGE_PORT=8080 \
    PYTHONUNBUFFERED=1
WORKDIR /opt/weir

COPY --from=venv /opt/weir/ /opt/weir/
COPY nginx/ nginx/
COPY lua/ lua/
COPY release.yaml ./
COPY --from=models /build/repository/ models/

RUN useradd --system --uid 10001 --home-dir /var/lib/weir --create-home weir
USER 10001

EXPOSE 8080
# Readiness through the edge (which asks the sidecars). WEIR_EDGE_PORT follows a release that
# moves `edge.listen` off 8080.
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["sh", "-c", "exec weir probe --address 127.0.0.1:${WEIR_EDGE_PORT} --path /v2/health/ready"]
STOPSIGNAL SIGTERM
# The image runs `weir`: CMD is the command line (`weir up FILE` here); Kubernetes manifests
# from `weir k8s` name `command: [weir]` and give their own (`edge FILE`, `sidecar ...`).
ENTRYPOINT ["weir"]
CMD ["up", "/opt/weir/release.yaml"]
