"""Developer tools: random-weight test models (SD1.5 checkpoints, kohya LoRAs) and their CLI commands."""

from orchestrator.devtools.models import write_kohya_lora, write_sd15_checkpoint

__all__ = ["write_kohya_lora", "write_sd15_checkpoint"]
