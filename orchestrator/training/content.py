"""The texts of subjects and trainings, as the content policy sees them (each named by its request field).

A training's texts are judged together with its subject's: a subject called after a child and a sample
prompt asking for nudity are refused by the minors rule even though neither is alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.db.models import Photo, Subject
from orchestrator.policy import Context, TextField
from orchestrator.training.training_schemas import TrainingCreate


def subject_fields(name: str, trigger_word: str, class_word: str | None, prefix: str = "") -> list[TextField]:
    """A subject's name, trigger word and class word."""
    fields = [
        TextField(f"{prefix}name", name, Context.SUBJECT_NAME),
        TextField(f"{prefix}trigger_word", trigger_word, Context.TRIGGER_WORD),
    ]
    if class_word:
        fields.append(TextField(f"{prefix}class_word", class_word, Context.CLASS_WORD))
    return fields


def training_fields(body: TrainingCreate, subject: Subject, photos: Sequence[Photo], lora_name: str) -> list[TextField]:
    """Sample prompts (not their negative prompts), caption template, captions given and stored, the LoRA
    name, and the subject's own texts."""
    fields = [
        TextField(f"sample_prompts[{i}].prompt", sample.prompt, Context.SAMPLE_PROMPT)
        for i, sample in enumerate(body.sample_prompts)
    ]
    if body.captions is not None:
        if body.captions.template:
            fields.append(TextField("captions.template", body.captions.template, Context.CAPTION_TEMPLATE))
        fields += [
            TextField(f"captions.per_photo.{photo_id}", caption, Context.PHOTO_CAPTION)
            for photo_id, caption in body.captions.per_photo.items()
        ]
    given = set(body.captions.per_photo) if body.captions is not None else set()
    fields += [
        TextField(f"photos.{p.id}.caption", p.caption, Context.PHOTO_CAPTION)
        for p in photos
        if p.caption and p.id not in given
    ]
    fields.append(TextField("lora_name", lora_name, Context.LORA_NAME))
    return fields + subject_fields(subject.name, subject.trigger_word, subject.class_word, prefix="subject.")
