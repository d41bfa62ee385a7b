"""Randomly-initialised captioning models of the real architectures, saved the way the hub ships them.

BLIP (BlipForConditionalGeneration + BlipProcessor with a BERT tokenizer) and Florence-2
(Florence2ForConditionalGeneration: DaViT vision tower + BART text model, Florence2Processor with a BART
tokenizer) are built from their configs and written with ``save_pretrained``, so the captioner loads them
through exactly the code that loads the published models. Their captions are nonsense words; the pipeline
around them is real. ``tiny`` (the tests) builds in well under a second once torch is imported; ``base``
(benchmarks) has the published base models' shapes and costs what they cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

FAKE_WORDS = 300
Size = Literal["tiny", "base"]

# "base": the published base models' shapes (Salesforce/blip-image-captioning-base: ViT-B/16 at 384 px and a
# 12-layer BERT decoder over a 30,524-word vocabulary; Florence-2-base: DaViT at 768 px and a 6+6-layer BART
# with d_model 768 over 51,289 tokens), so a benchmark with random weights costs what the real model costs
# per generated token. Their tokenisers hold fake words of the real vocabulary size.
_BLIP_BASE_WORDS = 30_524 - 6
_FLORENCE_BASE_WORDS = 51_289 - 34


def build_blip(target: Path, *, size: Size = "tiny", seed: int = 0, min_new_tokens: int = 3) -> Path:
    """A BLIP captioning model in ``target`` (tiny: 32 px images, one layer each side); returns ``target``."""
    import torch
    from transformers import (  # type: ignore[attr-defined]
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = FAKE_WORDS if size == "tiny" else _BLIP_BASE_WORDS
    vocab = specials + [f"word{i}" for i in range(words)]
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(vocab)})
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    side = 32 if size == "tiny" else 384
    processor = BlipProcessor(
        image_processor=BlipImageProcessorPil(size={"height": side, "width": side}), tokenizer=tokenizer
    )
    text: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    vision: dict[str, Any] = {"image_size": side, "patch_size": 16}
    if size == "tiny":
        text |= {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
        text |= {"max_position_embeddings": 64}
        vision |= {"hidden_size": 32, "patch_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2}
        vision |= {"intermediate_size": 64}
    config = BlipConfig(text_config=text, vision_config=vision)
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config)
    model.generation_config.min_new_tokens = min_new_tokens  # random weights would often stop at once
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target


def build_florence2(target: Path, *, size: Size = "tiny", seed: int = 0, min_new_tokens: int = 3) -> Path:
    """A Florence-2 model in ``target`` (tiny: 64 px images, tiny DaViT and BART); returns ``target``."""
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
    count = FAKE_WORDS if size == "tiny" else _FLORENCE_BASE_WORDS
    words = [f"\u0120word{i}" for i in range(count)]  # byte-level BPE marks a leading space with U+0120
    vocab = [*specials, *letters, "\u0120", *words, "<mask>", "<image>"]
    tokenizer = BartTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, merges=[], extra_special_tokens={"image_token": "<image>"}
    )
    side = 64 if size == "tiny" else 768  # DaViT downsamples 32x: (side/32)^2 patches, plus one pooled token
    image_processor = CLIPImageProcessorPil(
        size={"height": side, "width": side},
        crop_size={"height": side, "width": side},
        do_center_crop=False,
        image_seq_length=(side // 32) ** 2 + 1,
    )
    processor = Florence2Processor(image_processor=image_processor, tokenizer=tokenizer)
    text: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "decoder_start_token_id": tokenizer.eos_token_id,
    }
    if size == "tiny":
        vision: dict[str, Any] = {
            "depths": [1, 1, 1, 1],
            "embed_dim": [16, 16, 16, 32],
            "num_heads": [1, 1, 1, 2],
            "num_groups": [1, 1, 1, 2],
            "window_size": 2,
            "projection_dim": 32,
            "max_temporal_embeddings": 4,
            "max_position_embeddings": 8,
            "drop_path_rate": 0.0,
        }
        text |= {"d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_attention_heads": 2}
        text |= {"decoder_attention_heads": 2, "encoder_ffn_dim": 64, "decoder_ffn_dim": 64}
        text |= {"max_position_embeddings": 64}
    else:  # the config's DaViT defaults are the base tower; the text side is BART base
        vision = {"projection_dim": 768, "drop_path_rate": 0.0}
        text |= {"d_model": 768, "encoder_layers": 6, "decoder_layers": 6, "encoder_attention_heads": 12}
        text |= {"decoder_attention_heads": 12, "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072}
        text |= {"max_position_embeddings": 1024}
    config = Florence2Config(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(seed)
    model = Florence2ForConditionalGeneration(config)
    model.generation_config.min_new_tokens = min_new_tokens
    # Random weights favour the special tokens; a real model does not emit them mid-caption either.
    model.generation_config.suppress_tokens = [tokenizer.image_token_id, tokenizer.pad_token_id]
    model.save_pretrained(target)
    processor.save_pretrained(target)
    return target
