"""The ``autodistiller`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from pydantic import ValidationError


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        required=True,
        help="rotten_tomatoes | bbc_news | a CSV/JSONL/Parquet file | "
        "a save_to_disk folder | a Hub dataset name",
    )
    p.add_argument("--text-column", default="text")
    p.add_argument("--text-pair-column", default=None, help="second sentence column for pair tasks")
    p.add_argument("--label-column", default="label")
    p.add_argument("--max-train", type=int, default=None, help="stratified subset of the training split")
    p.add_argument("--max-val", type=int, default=None, help="stratified subset of the validation split")
    p.add_argument("--seed", type=int, default=0)


def _dataset_ref(args: argparse.Namespace):
    from service.schemas import DatasetRef

    return DatasetRef(
        source=args.dataset,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        max_train=args.max_train,
        max_val=args.max_val,
        seed=args.seed,
    )


def _load_task(args: argparse.Namespace):
    from distill.data import load_subset

    return load_subset(**_dataset_ref(args).model_dump())


def cmd_components(args: argparse.Namespace) -> int:
    from distill.augment import AUGMENTATIONS
    from distill.losses import LOSSES
    from distill.objectives import OBJECTIVES

    families = {
        "output losses": LOSSES,
        "intermediate objectives": OBJECTIVES,
        "augmentations": AUGMENTATIONS,
    }
    listing = {kind: {e.name: e.description for e in reg.entries()} for kind, reg in families.items()}
    listing["augmentations"]["mixup (Augmentation.mixup)"] = "mixup of input embeddings and teacher targets"
    listing["layer mappings"] = {
        "skip": "student layer i ↔ teacher layer i·k (PKD-skip)",
        "last": "student layers ↔ the teacher's last layers (PKD-last)",
        "uniform": "embeddings ↔ embeddings, then evenly spaced teacher layers",
        "emd": "all layer pairs weighted by an earth-mover transport plan (BERT-EMD)",
    }
    if args.json:
        print(json.dumps(listing, indent=2))
        return 0
    for kind, entries in listing.items():
        print(f"{kind} ({len(entries)}):")
        width = max(map(len, entries))
        for name, desc in entries.items():
            print(f"  {name:<{width}}  {desc}")
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    from distill.assets import minilm_dir
    from distill.settings import Settings
    from distill.teacher import FinetuneConfig, finetune_teacher

    task = _load_task(args)
    base = args.base or str(minilm_dir())
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, max_length=args.max_length, seed=args.seed)
    teacher = finetune_teacher(base, task, Settings.from_env().teachers, cfg)
    print(teacher.model.name_or_path)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from distill.engine import distill_student
    from distill.export import export_student
    from distill.pipeline import Pipeline
    from distill.settings import Settings
    from distill.teacher import load_teacher

    pipeline = Pipeline.model_validate_json(Path(args.pipeline).read_text()) if args.pipeline else Pipeline()
    task = _load_task(args)
    teacher = load_teacher(args.teacher)
    result = distill_student(task, teacher, pipeline, cache_dir=Settings.from_env().teacher_outputs)
    folder = export_student(result, teacher, task, Path(args.out))
    print(json.dumps(result.metrics, indent=2))
    print(f"student saved to {folder}")
    return 0


def _job_spec(args: argparse.Namespace):
    from service.schemas import JobBudget, JobSpec, TeacherRef

    return JobSpec(
        dataset=_dataset_ref(args),
        teacher=TeacherRef(path=args.teacher) if args.teacher else TeacherRef(base=args.base or "minilm"),
        budget=JobBudget(
            trials=args.trials,
            wall_seconds=args.wall_seconds,
            concurrency=args.concurrency,
            cpus_per_trial=args.cpus_per_trial,
            space=args.space,
            max_length=args.max_length,
            objectives=args.objectives.split(","),
            max_params=args.max_params,
            max_latency_ms=args.max_latency_ms,
            seed=args.seed,
        ),
    )


def cmd_search(args: argparse.Namespace) -> int:
    from workers.run import run_job_in_process

    job = run_job_in_process(_job_spec(args), ray_address=args.ray_address)
    return 0 if job.state == "finished" else 1


def cmd_worker(args: argparse.Namespace) -> int:
    import logging

    from workers.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(ray_address=args.ray_address, stale_after_s=args.stale_after)
    print(f"worker {worker.worker_id}: waiting for jobs in {worker.settings.database_url}", flush=True)
    n = worker.run(once=args.once)
    print(f"worker {worker.worker_id}: processed {n} job(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from distill.demo import run_demo

    run_demo(n_train=args.n_train, n_val=args.n_val, max_length=args.max_length, trials=args.trials)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodistiller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="fine-tune a Rotten Tomatoes teacher (cached), search, distil a student")
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--trials", type=int, default=6)
    p.set_defaults(fn=cmd_demo)

    p = sub.add_parser("distill", help="distil a student with one pipeline and export it")
    _add_data_args(p)
    p.add_argument("--teacher", required=True, help="fine-tuned HF model folder (safetensors) or Hub id")
    p.add_argument("--pipeline", help="pipeline JSON file (default: the default Pipeline)")
    p.add_argument("--out", required=True, help="folder for the exported student")
    p.set_defaults(fn=cmd_distill)

    p = sub.add_parser("teacher", help="fine-tune a base encoder into a teacher (cached)")
    _add_data_args(p)
    p.add_argument("--base", help="base encoder folder or Hub id (default: the shipped MiniLM)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=64)
    p.set_defaults(fn=cmd_teacher)

    p = sub.add_parser(
        "search", help="search the KD pipeline space for a dataset and teacher (in-process worker)"
    )
    _add_data_args(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--teacher", help="fine-tuned HF model folder (safetensors) or Hub id")
    who.add_argument(
        "--base", help="base encoder to fine-tune into the teacher (default: the shipped MiniLM)"
    )
    p.add_argument("--trials", type=int, default=12, help="trials in all, the 2 reference trials included")
    p.add_argument("--wall-seconds", type=float, default=None)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--space", choices=["default", "small"], default="default")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument(
        "--objectives", default="accuracy", help="accuracy[,params|,latency_ms] (NSGA-II if several)"
    )
    p.add_argument(
        "--max-params", type=int, default=None, help="every student has at most this many parameters"
    )
    p.add_argument("--max-latency-ms", type=float, default=None, help="every student's CPU latency bound")
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("worker", help="claim queued jobs from the database and run them")
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    p.add_argument("--once", action="store_true", help="exit when no job is left")
    p.add_argument(
        "--stale-after", type=float, default=30.0, help="seconds without heartbeat before a job is taken over"
    )
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("components", help="list every registered loss, objective and augmentation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_components)
    return parser


def main(argv: list[str] | None = None) -> int:
    from distill.data import DataError
    from distill.hf import ModelError
    from distill.registry import UnknownComponentError

    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        code = args.fn(args)
    except (DataError, ModelError, UnknownComponentError, ValidationError, FileNotFoundError) as e:
        print(f"autodistiller: error: {e}", file=sys.stderr)
        return 2
    if args.command not in ("components",):
        print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
