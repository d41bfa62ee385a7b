"""LoRA training: dataset preparation, sd-scripts configuration, supervision and publishing."""
