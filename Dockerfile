# The Atelier service (API + workers). ComfyUI and sd-scripts run in their own images (docker/), or as
# servers named by ATELIER_COMFYUI_URLS; see compose.yaml.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY client ./client
COPY orchestrator ./orchestrator
COPY comfy_workflows ./comfy_workflows
COPY trainer ./trainer
# the `atelier` command is the client's; the server's commands (serve, worker, ...) join it
RUN pip install --no-cache-dir ./client .

ENV ATELIER_HOST=0.0.0.0 \
    ATELIER_VAR_DIR=/data/var \
    ATELIER_MODELS_DIR=/data/models
EXPOSE 8000
HEALTHCHECK --interval=5s --timeout=3s --retries=60 CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
CMD ["atelier", "serve"]
