"""Contextual augmentation: masked-LM word substitution (Kobayashi 2018; Distiller's best augmentation)."""

from __future__ import annotations

import random
from pathlib import Path

import torch
import transformers
from torch import Tensor

from distill.augment.base import AUGMENTATIONS, AugmentContext, match_case, split_punct
from distill.hf import ModelError, check_model_folder, load_tokenizer

MAX_TOKENS = 128


def load_masked_lm(source: str | Path) -> tuple[transformers.PreTrainedModel, object]:
    """A masked LM and its tokenizer from a checked local folder or a Hub id: safetensors only, never remote
    code, and refused when the weights lack the MLM head (e.g. a sentence-embedding encoder such as the
    shipped all-MiniLM-L6-v2, which has no ``cls.predictions`` weights)."""
    path = Path(source)
    if path.exists():
        check_model_folder(path)
    elif "/" not in str(source) or str(source).startswith((".", "/")):
        raise ModelError(f"masked LM {source} is neither an existing folder nor a Hub id (org/name)")
    try:
        model, info = transformers.AutoModelForMaskedLM.from_pretrained(
            str(source), use_safetensors=True, trust_remote_code=False, output_loading_info=True
        )
    except (OSError, ValueError) as e:
        raise ModelError(f"could not load masked LM {source}: {e}") from None
    if missing := sorted(k for k in info["missing_keys"] if not k.endswith("position_ids")):
        raise ModelError(f"{source} has no usable masked-LM head: its weights lack {', '.join(missing[:4])}")
    return model.eval(), load_tokenizer(source)


def _candidates(tok) -> Tensor:
    """``(V,)`` bool: whole-word, non-special vocabulary tokens with a letter or digit."""
    special = set(tok.all_special_tokens)
    ok = torch.zeros(len(tok), dtype=torch.bool)
    for t, i in tok.get_vocab().items():
        if (
            i < len(ok)
            and not t.startswith("##")
            and t not in special
            and not t.startswith("[")
            and t.isalnum()
        ):
            ok[i] = True
    return ok


def _masked_input(words: list[str], chosen: set[int], tok) -> tuple[list[int], dict[int, int]]:
    """Token ids of ``[CLS] words [SEP]`` with each chosen word's core replaced by one ``[MASK]``; and
    word index → mask position (words cut off by ``MAX_TOKENS`` get none)."""
    ids, where = [tok.cls_token_id], {}
    for i, w in enumerate(words):
        pre, _, post = split_punct(w)
        if i in chosen:
            pieces = [*tok.tokenize(pre), tok.mask_token, *tok.tokenize(post)]
            where[i] = len(ids) + len(tok.tokenize(pre))
        else:
            pieces = tok.tokenize(w)
        ids += tok.convert_tokens_to_ids(pieces)
    ids = [*ids[: MAX_TOKENS - 1], tok.sep_token_id]
    return ids, {i: pos for i, pos in where.items() if pos < len(ids) - 1}


@torch.no_grad()
def _predict(words: list[str], where: dict[int, int], ids: list[int], ctx: AugmentContext) -> dict[int, list]:
    """Word index → (top-k candidate tokens, their renormalised probabilities) at its mask."""
    model, tok = ctx.masked_lm()
    logits = model(input_ids=torch.tensor([ids], device=model.device)).logits[0].float().cpu()
    ok = ctx.mlm_candidates()
    out = {}
    for i, pos in where.items():
        row = logits[pos].masked_fill(~ok, -torch.inf)
        own = tok.convert_tokens_to_ids(split_punct(words[i])[1].lower())
        if isinstance(own, int) and 0 <= own < len(row):
            row[own] = -torch.inf  # a substitute, not the word itself
        top = row.topk(min(ctx.k, int(ok.sum())))
        keep = torch.isfinite(top.values)
        if keep.any():
            probs = top.values[keep].softmax(-1).tolist()
            out[i] = (tok.convert_ids_to_tokens(top.indices[keep].tolist()), probs)
    return out


@AUGMENTATIONS.register(
    "contextual",
    "Contextual augmentation: replace each word with prob. p by a masked-LM prediction (augmentation.mlm)",
)
def contextual(words: list[str], rng: random.Random, p: float, ctx: AugmentContext) -> list[str]:
    """Words are picked with probability ``p``; all picked words of a text are masked at once (one forward
    pass per text) and each is replaced by a token drawn from the masked LM's distribution at its mask,
    restricted to the ``k`` most likely whole-word tokens other than the word itself and renormalised::

        w_i ← v,   v ~ softmax(z_i)|top-k(z_i restricted to whole words ≠ w_i)

    Kobayashi (2018) masks one word at a time (and conditions on the label); Distiller uses the
    unconditional BERT form. Masking all picked words together is our shortcut (one forward per text);
    at p ≤ 0.3 the masks rarely touch. Punctuation and capitalisation are kept; the MLM comes from
    ``Augmentation.mlm`` (a folder or Hub id, loaded once per run with ``load_masked_lm``).
    """
    chosen = {i for i, w in enumerate(words) if rng.random() < p and split_punct(w)[1]}
    if not chosen:
        return list(words)
    _, tok = ctx.masked_lm()
    ids, where = _masked_input(words, chosen, tok)
    options = _predict(words, where, ids, ctx)
    out = list(words)
    for i, (tokens, probs) in options.items():
        pre, core, post = split_punct(words[i])
        out[i] = pre + match_case(core, rng.choices(tokens, weights=probs)[0]) + post
    return out


contextual.uses_mlm = True  # type: ignore[attr-defined]
