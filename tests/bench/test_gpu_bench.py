"""bench/gpu.py without Ray: its tiny teacher, the teacher-throughput timer and the goals it prints. (The
whole ``--smoke`` run starts Ray and takes minutes on the 2-core CI box, so it is run by hand:
``python -m bench.gpu --smoke``, bench/RESULTS.md.)"""

from __future__ import annotations

import torch

from bench.gpu import SMOKE, make_teacher, report, throughput
from distill.encoding import encode_fixed
from distill.teacher import load_teacher


def test_tiny_teacher_and_throughput(tmp_path, rt_small):
    teacher = load_teacher(make_teacher(tmp_path / "t", tiny=True))
    assert teacher.labels == ["rotten", "fresh"] and teacher.num_layers == 2
    train = encode_fixed(rt_small.train[:64], teacher.tokenizer, SMOKE.max_length, torch.arange(2))
    assert throughput(teacher, train, []) > 0
    assert throughput(teacher, train, [0, 1, 2]) > 0


def test_report_states_the_goals(capsys):
    level = {"trials": 4, "wall": 40.0, "device": "cuda"}
    report({
        "device": "H200", "amp": "torch.bfloat16", "bare_loop_s": 10.0,
        "size": {"n_train": 8000, "n_val": 500, "max_length": 64, "epochs": 3},
        "teacher_examples_per_s": {"logits": 20000.0},
        "levels": [
            {**level, "level": 1, "trials_per_hour": 360.0, "trial_wall": 10.5},
            {**level, "level": 4, "trials_per_hour": 1260.0, "trial_wall": 11.0},
        ],
    })  # fmt: skip
    out = capsys.readouterr().out
    assert "| 4 | 4 | 40.0 | 1,260 | 3.50× | 11.00 | 1.10 |" in out
    assert "trial wall at 1 ÷ bare loop = 1.05 (goal ≤ 1.1); 4 at once = 3.50×" in out
