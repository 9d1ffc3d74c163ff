"""A tiny random-init Llama with a BPE tokenizer trained on our own prompts.

Used by the tests, the benchmarks and the ``.test/`` configuration (registry ``source:
tiny``, built by the ``models_tiny`` rule through :func:`build_tiny`): it needs no download.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cotlens.io.atomic import atomic_dir
from cotlens.io.fingerprint import of_manifest
from cotlens.models.registry import recipe_revision, tiny_recipe


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tk.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def build_tiny_llama(
    out: str | Path,
    corpus: Iterable[str],
    layers: int = 2,
    d_model: int = 64,
    heads: int = 4,
    kv_heads: int = 2,
    d_mlp: int = 128,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Save a random-init LlamaForCausalLM + tokenizer directory at ``out``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer(corpus, vocab_size)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=d_model,
        intermediate_size=d_mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=4096,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).eval()
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return Path(out)


def write_manifest(tmp: Path, out: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """Finish a built model directory ``tmp`` (to become ``out``): the manifest with the
    sha256 of its safetensors weights and its name."""
    h = hashlib.sha256()
    for f in sorted((tmp / "weights").glob("*.safetensors")):
        h.update(f.read_bytes())
    manifest = {**manifest, "sha256": h.hexdigest(), "name": Path(out).name}
    manifest["fingerprint"] = of_manifest(manifest)
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


def build_tiny(entry: Mapping[str, Any], out: str | Path, corpus: Sequence[str]) -> dict[str, Any]:
    """A prepared model directory (``manifest.json`` + ``weights/``) holding the tiny
    Llama of a registry entry with ``source: tiny``, written atomically; ``corpus`` trains
    its tokenizer (the stage passes :func:`cotlens.circuits.fewshot.prontoqa_corpus`)."""
    r = tiny_recipe(entry)
    with atomic_dir(out) as tmp:
        build_tiny_llama(
            tmp / "weights",
            corpus,
            layers=int(r["layers"]),
            d_model=int(r["d_model"]),
            heads=int(r["heads"]),
            kv_heads=int(r["kv_heads"]),
            d_mlp=int(r["d_mlp"]),
            vocab_size=int(r["vocab_size"]),
            seed=int(r["seed"]),
        )
        manifest = write_manifest(
            tmp, out, {"source": "tiny", "revision": recipe_revision(r), "recipe": r, "path": "weights"}
        )
    return manifest
