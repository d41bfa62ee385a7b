"""LoRA Atelier orchestrator: the aiohttp service, job store, worker and engine clients."""

__version__ = "0.1.0"
