"""Secrets in Settings stay out of its repr and str (S3 key and webhook secret out of its JSON too)."""

from __future__ import annotations

from orchestrator.settings import Settings


def test_secrets_are_not_shown() -> None:
    settings = Settings(
        database_url="postgresql+asyncpg://atelier:db-password-1@127.0.0.1:5432/atelier",
        s3_secret_access_key="s3-secret-2",
        webhook_secret="hook-secret-3",
    )
    shown = repr(settings) + str(settings)
    for secret in ("db-password-1", "s3-secret-2", "hook-secret-3"):
        assert secret not in shown
    dumped = settings.model_dump_json()
    assert "s3-secret-2" not in dumped
    assert "hook-secret-3" not in dumped
    assert settings.s3_secret_access_key is not None
    assert settings.s3_secret_access_key.get_secret_value() == "s3-secret-2"
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == "hook-secret-3"
