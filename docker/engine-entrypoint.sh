#!/bin/sh
# Start what the image was built for (see engine.Dockerfile).
set -eu
engines="${ATELIER_ENGINES_DIR:-/opt/atelier/engines}"
case "${ENGINE}" in
  comfyui)
    mkdir -p "${ATELIER_VAR_DIR}/comfyui"
    exec "${engines}/comfyui/venv/bin/python" "${engines}/comfyui/src/main.py" \
      --listen 0.0.0.0 --port 8188 --disable-auto-launch \
      --extra-model-paths-config "${engines}/comfyui/extra_model_paths.yaml" \
      --output-directory "${ATELIER_VAR_DIR}/comfyui/output" --input-directory "${ATELIER_VAR_DIR}/comfyui/input" \
      "$@"
    ;;
  sd-scripts)
    exec atelier worker --kinds training "$@"
    ;;
  *)
    echo "engine-entrypoint: unknown ENGINE=${ENGINE}" >&2
    exit 2
    ;;
esac
