"""The LoRA registry: published LoRA files and their versions, looked up by name or id."""
