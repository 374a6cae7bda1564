"""Quiet, safe access to Hugging Face models: safetensors only, never remote code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import transformers
from safetensors import safe_open

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
    if "auto_map" in cfg or cfg.get("trust_remote_code"):
        raise ModelError(
            f"{config} asks for custom code (auto_map or trust_remote_code); remote code is never run"
        )
    if cfg.get("model_type") not in transformers.CONFIG_MAPPING:
        raise ModelError(f"{config}: unknown model_type {cfg.get('model_type')!r}")
    files = [p for p in folder.iterdir() if p.is_file()]
    if not any(p.suffix == ".safetensors" for p in files):
        pickled = sorted(p.name for p in files if p.suffix in PICKLE_SUFFIXES)
        what = f"pickled weights ({', '.join(pickled)})" if pickled else "no weights"
        raise ModelError(f"{folder} has {what}; only safetensors weights are accepted")
    _check_weight_count(folder)


def _check_weight_count(folder: Path, coverage: float = 0.9) -> None:
    """Refuse weights far smaller than the model the config describes, before that model is allocated
    (a tiny archive must not make the server build a huge, random model). Reads tensor headers only."""
    try:
        cfg = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
        with torch.device("meta"):  # shapes only, no memory
            model = transformers.AutoModelForSequenceClassification.from_config(cfg)
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(f"{folder}/config.json does not describe a usable model: {e}") from None
    need = sum(p.numel() for p in model.parameters())
    have = 0
    for f in folder.glob("*.safetensors"):
        try:
            with safe_open(str(f), "pt") as h:
                have += sum(math.prod(h.get_slice(k).get_shape()) for k in h.keys())  # noqa: SIM118
        except Exception as e:  # a corrupt or truncated file
            raise ModelError(f"{f.name} is not a readable safetensors file: {e}") from None
    if have < coverage * need:
        raise ModelError(
            f"{folder}: the safetensors weights hold {have:,} values but config.json describes a model of "
            f"{need:,} parameters; upload the weights that belong to this config"
        )


def load_classifier(
    source: str | Path, *, complete: bool = False, **kw: object
) -> transformers.PreTrainedModel:
    """A sequence-classification model from a checked local folder or a Hub id (safetensors only).
    ``complete``: refuse weights that leave any of the model's tensors (its classifier too) uninitialised —
    what a fine-tuned teacher must satisfy; a base encoder gets a new classifier."""
    path = Path(source)
    try:
        local = path.exists()
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte
        raise ModelError(f"`{str(source)[:200]}` is not a usable model path: {e}") from None
    if local:
        check_model_folder(path)
    elif "/" not in str(source) or str(source).startswith((".", "/")):
        raise ModelError(f"model {source} is neither an existing folder nor a Hub id (org/name)")
    try:
        model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(source), use_safetensors=True, trust_remote_code=False, output_loading_info=True, **kw
        )
    except OSError as e:
        raise ModelError(f"could not load model {source}: {e}") from None
    except (RuntimeError, ValueError, TypeError, KeyError) as e:  # weights that do not fit the config
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise ModelError(f"model {source}: its weights do not match its config.json ({first})") from None
    missing = sorted(info["missing_keys"])
    if complete and missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ModelError(
            f"model {source} is not a complete fine-tuned classifier: its weights lack {len(missing)} "
            f"tensors ({shown})"
        )
    return model


def load_tokenizer(source: str | Path) -> transformers.PreTrainedTokenizerBase:
    try:
        return transformers.AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise ModelError(f"could not load the tokenizer of {source}: {e}") from None
