# One image per engine, installed exactly as `atelier engines install` installs it (same pinned commits, same
# steps, its own venv, torch for the GPU): build with --build-arg ENGINE=comfyui or ENGINE=sd-scripts.
#   comfyui:    runs ComfyUI on 0.0.0.0:8188 with our node pack linked in and /data/models as its model store
#   sd-scripts: runs `atelier worker --kinds training`, training with the installed sd-scripts
FROM python:3.11-slim

ARG ENGINE=comfyui
ARG TORCH=cuda

RUN apt-get update \
    && apt-get install -y --no-install-recommends git libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY client ./client
COPY orchestrator ./orchestrator
COPY comfy_workflows ./comfy_workflows
COPY trainer ./trainer
COPY custom_nodes ./custom_nodes
# editable: the node pack linked into ComfyUI is this checkout's custom_nodes/atelier_nodes
RUN pip install --no-cache-dir ./client -e .

ENV ATELIER_ENGINES_DIR=/opt/atelier/engines \
    ATELIER_VAR_DIR=/data/var \
    ATELIER_MODELS_DIR=/data/models \
    ENGINE=${ENGINE}
RUN atelier engines install "${ENGINE}" --torch "${TORCH}"

COPY docker/engine-entrypoint.sh /usr/local/bin/engine-entrypoint
ENTRYPOINT ["engine-entrypoint"]
