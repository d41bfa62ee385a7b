"""Tiny randomly-initialised captioning models of the real architectures, saved the way the hub ships them.

BLIP (BlipForConditionalGeneration + BlipProcessor with a BERT tokenizer) and Florence-2
(Florence2ForConditionalGeneration: DaViT vision tower + BART text model, Florence2Processor with a BART
tokenizer) are built from their configs at toy sizes and written with ``save_pretrained``, so the captioner
loads them through exactly the code that loads the published models. Their captions are nonsense words;
the pipeline around them is real. Each builds in well under a second once torch is imported.
"""

from __future__ import annotations

from pathlib import Path

FAKE_WORDS = 300


def build_tiny_blip(target: Path, *, seed: int = 0) -> Path:
    """A BLIP captioning model (32 px images, one layer each side) in ``target``; returns ``target``."""
    import torch
    from transformers import (  # type: ignore[attr-defined]
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + [f"word{i}" for i in range(FAKE_WORDS)]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    config = BlipConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "sep_token_id": tokenizer.sep_token_id,
            "eos_token_id": tokenizer.sep_token_id,
        },
        vision_config={
            "hidden_size": 32,
            "image_size": 32,
            "patch_size": 8,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
        },
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    model.generation_config.min_new_tokens = 3  # random weights would often stop at once
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target


def build_tiny_florence2(target: Path, *, seed: int = 0) -> Path:
    """A Florence-2 model (64 px images, tiny DaViT and BART) in ``target``; returns ``target``."""
    import torch
    from transformers import (
        BartTokenizer,
        CLIPImageProcessorPil,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = [f"\u0120word{i}" for i in range(FAKE_WORDS)]  # byte-level BPE marks a leading space with U+0120
    vocab = [*specials, *letters, "\u0120", *words, "<mask>", "<image>"]
    tokenizer = BartTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, merges=[], extra_special_tokens={"image_token": "<image>"}
    )
    side = 64  # DaViT downsamples 32x: 2x2 patches, plus one pooled token
    image_processor = CLIPImageProcessorPil(
        size={"height": side, "width": side},
        crop_size={"height": side, "width": side},
        do_center_crop=False,
        image_seq_length=(side // 32) ** 2 + 1,
    )
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer)
    config = Florence2Config(
        vision_config={
            "depths": [1, 1, 1, 1],
            "embed_dim": [16, 16, 16, 32],
            "num_heads": [1, 1, 1, 2],
            "num_groups": [1, 1, 1, 2],
            "window_size": 2,
            "projection_dim": 32,
            "max_temporal_embeddings": 4,
            "max_position_embeddings": 8,
            "drop_path_rate": 0.0,
        },
        text_config={
            "vocab_size": len(tokenizer),
            "d_model": 32,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_attention_heads": 2,
            "decoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "decoder_ffn_dim": 64,
            "max_position_embeddings": 64,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
        },
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config)
    model.generation_config.min_new_tokens = 3
    # Random weights favour the special tokens; a real model does not emit them mid-caption either.
    model.generation_config.suppress_tokens = [tokenizer.image_token_id, tokenizer.pad_token_id]
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target
