"""Quiet, safe access to Hugging Face models: safetensors only, never remote code."""

from __future__ import annotations

import json
from pathlib import Path

import transformers

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ModelError(ValueError):
    """A model folder or id that AutoDistiller refuses to load; the message says why."""


def check_model_folder(folder: Path) -> None:
    """Refuse folders that would need unpickling or remote code, before transformers sees them."""
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelError(f"{folder} has no config.json: not a Hugging Face model folder")
    try:
        cfg = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{config} is not valid JSON: {e}") from None
    if "auto_map" in cfg:
        raise ModelError(f"{config} asks for custom code (auto_map); remote code is never run")
    if cfg.get("model_type") not in transformers.CONFIG_MAPPING:
        raise ModelError(f"{config}: unknown model_type {cfg.get('model_type')!r}")
    files = [p for p in folder.iterdir() if p.is_file()]
    if not any(p.suffix == ".safetensors" for p in files):
        pickled = sorted(p.name for p in files if p.suffix in PICKLE_SUFFIXES)
        what = f"pickled weights ({', '.join(pickled)})" if pickled else "no weights"
        raise ModelError(f"{folder} has {what}; only safetensors weights are accepted")


def load_classifier(source: str | Path, **kw: object) -> transformers.PreTrainedModel:
    """A sequence-classification model from a checked local folder or a Hub id (safetensors only)."""
    path = Path(source)
    if path.exists():
        check_model_folder(path)
    elif "/" not in str(source) or str(source).startswith((".", "/")):
        raise ModelError(f"model {source} is neither an existing folder nor a Hub id (org/name)")
    try:
        return transformers.AutoModelForSequenceClassification.from_pretrained(
            str(source), use_safetensors=True, trust_remote_code=False, **kw
        )
    except OSError as e:
        raise ModelError(f"could not load model {source}: {e}") from None


def load_tokenizer(source: str | Path) -> transformers.PreTrainedTokenizerBase:
    try:
        return transformers.AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"could not load the tokenizer of {source}: {e}") from None
