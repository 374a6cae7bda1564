"""Issue 13's figures that fit on a loaded two-core machine: the demo's split (train / validation / test), the
teacher on the held-out test split with its 95% interval, and the "× faster" the old way (each model timed
on its own, ``cpu_latency_ms``) beside the side-by-side timing (``paired_latency``), for the demo's 2×384
reference student.

    PYTHONPATH=. python -m bench.trust --teacher <fine-tuned teacher folder>
"""

from __future__ import annotations

import argparse

import torch

from distill.data import load_subset
from distill.encoding import encode_fixed
from distill.holdout import held_out_metrics, interval_text, paired_latency, speed_text
from distill.pipeline import StudentArch
from distill.profile import teacher_label_map
from distill.student import build_student, cpu_latency_ms
from distill.teacher import load_teacher
from store.spec import DatasetRef


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()
    task = load_subset(**DatasetRef(source="rotten_tomatoes", max_train=1500, max_val=500).model_dump())
    print(f"split: {task.meta['split']}; test {len(task.test)}")
    teacher = load_teacher(args.teacher, eager=False)
    test = encode_fixed(task.test, teacher.tokenizer, args.max_length, teacher_label_map(teacher, task))
    val = encode_fixed(task.validation, teacher.tokenizer, args.max_length, teacher_label_map(teacher, task))
    print(f"teacher validation {interval_text(held_out_metrics(teacher.model, val))}")
    print(f"teacher test       {interval_text(held_out_metrics(teacher.model, test))}")
    student, _ = build_student(StudentArch(layers=2, hidden=384, heads=12, ffn=1536), teacher.model)
    threads = torch.get_num_threads()
    t_alone = cpu_latency_ms(teacher.model, seq_len=args.max_length)
    s_alone = cpu_latency_ms(student, seq_len=args.max_length)
    print(f"apart ({threads} threads, each timed alone): teacher {t_alone:.2f} ms, student {s_alone:.2f} ms, "
          f"{t_alone / s_alone:.1f}× faster")  # fmt: skip
    for n in (1, threads):
        pair = paired_latency(teacher.model, student, seq_len=args.max_length, threads=n, runs=30)
        print(f"side by side: {speed_text(pair)}")


if __name__ == "__main__":
    main()
