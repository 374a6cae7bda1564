"""The bench's method table: every pipeline is valid and changes what its label says (no training)."""

import torch

from bench.methods import CONTEXTUAL, KD, methods
from bench.mlm_head import mask_batch
from distill.assets import minilm_dir
from distill.hf import load_tokenizer
from distill.pipeline import Pipeline, Training


def test_methods_are_valid_pipelines():
    tr = Training(lr=3e-4, epochs=3, batch_size=32, max_length=64)
    table = methods(tr, mlm="/some/mlm")
    assert next(iter(table)) == KD
    for label, pipe in table.items():
        Pipeline.model_validate(pipe.model_dump(mode="json"))  # model_copy skips validation: recheck
        assert pipe.training.epochs == (6 if label.startswith("KD, 2x epochs") else 3), label
    prog = table["Progressive 1+1+1, hidden MSE (skip)"]
    assert [st.epochs for st in prog.training.stages] == [1, 1, 1]
    assert prog.intermediate.name == table["KD + hidden MSE (skip)"].intermediate.name == "hidden_mse"
    assert table["Multi-teacher confidence [1, 1]"].teachers.mode == "confidence"
    assert table[CONTEXTUAL].augmentation.mlm == "/some/mlm"
    assert CONTEXTUAL not in methods(tr)


def test_mask_batch_masks_15_percent_of_ordinary_tokens():
    tok = load_tokenizer(minilm_dir())
    ids = torch.randint(2000, 20000, (64, 50))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    gen = torch.Generator().manual_seed(0)
    masked, chosen = mask_batch(ids, special, tok, gen, bert=False)
    assert not chosen[:, 0].any()
    assert 0.12 < chosen.float().mean() < 0.18
    assert (masked[chosen] == tok.mask_token_id).all() and (masked[~chosen] == ids[~chosen]).all()
    masked, chosen = mask_batch(ids, special, tok, gen, bert=True)
    share = (masked[chosen] == tok.mask_token_id).float().mean()
    assert 0.7 < share < 0.9
