"""A masked-LM head for the shipped MiniLM encoder, for contextual augmentation in ``bench.methods``.

    nice -n 10 .venv/bin/python -m bench.mlm_head --task rotten_tomatoes --sizes 500 150 600 \
        --teacher-rows 1500 [--out FOLDER] [--minutes 4]

The shipped all-MiniLM-L6-v2 is a sentence encoder without ``cls.predictions`` weights, and no pretrained
masked LM can be downloaded here. This builds ``BertForMaskedLM`` from the MiniLM folder (encoder and word
embeddings loaded; the decoder tied to the word embeddings; ``cls.predictions.transform`` and the output
bias new), freezes everything but that head, and fits the head on the benchmark task's training texts (the
teacher's train rows of ``bench.methods``' split, never validation or test) with BERT's 15% masking
(80% [MASK], 10% random token, 10% unchanged). The encoder being frozen, its last hidden states are computed
once per masking round and the head is fitted on the masked positions' vectors only.

Prints held-out masked-token top-1 / top-5 accuracy before and after fitting, on the split's validation
texts (15% of the tokens replaced by [MASK], the way contextual augmentation queries the model; the
head of the epoch with the best held-out top-1 is kept: early stopping on validation), then saves
the model (safetensors) and tokenizer to ``--out`` (default ``$AUTODISTILLER_HOME/mlm/<task>``) and checks
that ``distill.augment.contextual.load_masked_lm`` accepts the folder.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import torch
import transformers

from bench.methods import three_way_split
from distill.assets import minilm_dir
from distill.augment.base import AugmentContext
from distill.augment.contextual import contextual, load_masked_lm
from distill.data import load_task
from distill.hf import load_tokenizer
from store.settings import Settings

HEAD = ("cls.predictions.transform.", "cls.predictions.bias")


def mask_batch(ids: torch.Tensor, special: torch.Tensor, tok, gen: torch.Generator, bert: bool):
    """``(masked ids, chosen positions)``: 15% of the non-special tokens; ``bert``: 80/10/10 replacement
    ([MASK] / random token / unchanged), else all [MASK]."""
    chosen = (torch.rand(ids.shape, generator=gen) < 0.15) & ~special
    out = ids.clone()
    r = torch.rand(ids.shape, generator=gen)
    as_mask = chosen & (r < 0.8) if bert else chosen
    out[as_mask] = tok.mask_token_id
    if bert:
        rand = chosen & (r >= 0.8) & (r < 0.9)
        out[rand] = torch.randint(999, len(tok), ids.shape, generator=gen)[rand]  # 999+: past [unused*]
    return out, chosen


@torch.no_grad()
def masked_vectors(model, tok, texts: list[str], rounds: int, seed: int, bert: bool, max_length: int):
    """``(hidden vectors (N, H), target ids (N,))`` at the masked positions over ``rounds`` maskings."""
    gen = torch.Generator().manual_seed(seed)
    hs, ys = [], []
    for _ in range(rounds):
        for i in range(0, len(texts), 32):
            enc = tok(
                texts[i : i + 32], truncation=True, max_length=max_length, padding=True, return_tensors="pt"
            )
            ids, att = enc["input_ids"], enc["attention_mask"]
            special = torch.tensor(
                [tok.get_special_tokens_mask(row, already_has_special_tokens=True) for row in ids.tolist()]
            ).bool() | (att == 0)
            masked, chosen = mask_batch(ids, special, tok, gen, bert)
            h = model.bert(input_ids=masked, attention_mask=att).last_hidden_state
            hs.append(h[chosen])
            ys.append(ids[chosen])
    return torch.cat(hs), torch.cat(ys)


@torch.no_grad()
def accuracy(model, h: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of the head on vectors ``h`` with targets ``y``."""
    model.eval()
    top1 = top5 = 0
    for i in range(0, len(h), 1024):
        top = model.cls(h[i : i + 1024]).topk(5, -1).indices
        top1 += (top[:, 0] == y[i : i + 1024]).sum().item()
        top5 += (top == y[i : i + 1024, None]).any(-1).sum().item()
    return top1 / len(y), top5 / len(y)


def build(base: Path) -> transformers.BertForMaskedLM:
    """``BertForMaskedLM`` from the MiniLM folder; only the head is new, only the head trains."""
    model, info = transformers.BertForMaskedLM.from_pretrained(
        str(base), use_safetensors=True, output_loading_info=True
    )
    missing = sorted(k for k in info["missing_keys"] if not k.endswith("position_ids"))
    print(f"new (missing) weights: {missing}")
    unexpected = sorted(info["unexpected_keys"])
    print(f"unused weights of the folder: {unexpected}")
    assert all(k.startswith(HEAD) or k == "cls.predictions.decoder.bias" for k in missing), missing
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr(), "decoder not tied"
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith(HEAD)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="rotten_tomatoes")
    ap.add_argument("--sizes", nargs=3, type=int, default=[500, 150, 600], help="train, val, test rows")
    ap.add_argument("--teacher-rows", type=int, default=0)
    ap.add_argument("--out", default="", help="default: $AUTODISTILLER_HOME/mlm/<task>")
    ap.add_argument("--minutes", type=float, default=4.0, help="time budget for fitting the head")
    ap.add_argument("--rounds", type=int, default=10, help="masking rounds of the training texts")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out) if args.out else Settings.from_env().home / "mlm" / args.task

    full = load_task(args.task)
    fit_rows, val, _test = three_way_split(full, [max(args.teacher_rows, args.sizes[0]), *args.sizes[1:]])
    tok = load_tokenizer(minilm_dir())
    model = build(minilm_dir()).eval()
    t0 = time.perf_counter()
    h_fit, y_fit = masked_vectors(
        model, tok, [e.text for e in fit_rows], args.rounds, 1, True, args.max_length
    )
    h_val, y_val = masked_vectors(model, tok, [e.text for e in val], 1, 2, False, args.max_length)
    print(
        f"{args.task}: fit on {len(fit_rows)} training texts ({len(y_fit)} masked positions over "
        f"{args.rounds} maskings), held out {len(val)} validation texts ({len(y_val)} masks); "
        f"encoder passes {time.perf_counter() - t0:.0f} s"
    )
    before = accuracy(model, h_val, y_val)
    print(f"held-out masked-token accuracy before fitting: top-1 {before[0]:.4f}, top-5 {before[1]:.4f}")

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    t0, epoch, best = time.perf_counter(), 0, (-1.0, 0, {})
    while time.perf_counter() - t0 < args.minutes * 60:
        model.train()
        perm = torch.randperm(len(y_fit))
        total = 0.0
        for i in range(0, len(perm), 256):
            idx = perm[i : i + 256]
            loss = torch.nn.functional.cross_entropy(model.cls(h_fit[idx]), y_fit[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            if time.perf_counter() - t0 > args.minutes * 60:
                break
        epoch += 1
        top1, top5 = accuracy(model, h_val, y_val)
        if top1 > best[0]:
            best = (top1, epoch, {k: v.clone() for k, v in model.state_dict().items() if k.startswith(HEAD)})
        print(
            f"epoch {epoch}: train loss {total / len(perm):.3f}, held-out top-1 {top1:.4f}, "
            f"top-5 {top5:.4f} ({time.perf_counter() - t0:.0f} s)",
            flush=True,
        )
    model.load_state_dict(best[2], strict=False)  # the head of the best held-out epoch (early stopping)
    after = accuracy(model, h_val, y_val)
    print(
        f"held-out masked-token accuracy after fitting (epoch {best[1]} of {epoch}): "
        f"top-1 {after[0]:.4f}, top-5 {after[1]:.4f}"
    )

    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)  # transformers 5 writes safetensors only
    tok.save_pretrained(out)
    mlm, _ = load_masked_lm(out)
    print(f"saved to {out}; load_masked_lm accepts it ({type(mlm).__name__})")
    ctx = AugmentContext(tokenizer=tok, mlm=str(out))
    rng = random.Random(0)
    for ex in val[:3]:
        words = ex.text.split()[:30]
        print(" ", " ".join(words), "\n→", " ".join(contextual(words, rng, 0.15, ctx)))


if __name__ == "__main__":
    main()
