"""Where images, datasets and LoRA files live: a local directory or an S3-compatible bucket."""

from orchestrator.storage.base import Storage, StorageKeyError, StoredObject, open_storage, sha256_hex

__all__ = ["Storage", "StorageKeyError", "StoredObject", "open_storage", "sha256_hex"]
