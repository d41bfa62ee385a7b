# The Atelier service (API + workers). ComfyUI and sd-scripts are not part of this image:
# point ATELIER_COMFYUI_URLS at ComfyUI servers, and mount an sd-scripts checkout for training workers.
FROM python:3.11-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY orchestrator ./orchestrator
COPY comfy_workflows ./comfy_workflows
COPY trainer ./trainer
COPY client ./client
# the `atelier` command is the client's; the server's commands (serve, worker, ...) join it
RUN pip install --no-cache-dir ./client .

ENV ATELIER_HOST=0.0.0.0 \
    ATELIER_VAR_DIR=/data/var \
    ATELIER_MODELS_DIR=/data/models
EXPOSE 8000
CMD ["atelier", "serve"]
