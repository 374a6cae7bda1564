"""The command line's local verbs: components, teacher, distill, search, worker, demo, serve, keys, migrate"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from store.settings import Settings
from store.states import JobState


def add_data_args(p: argparse.ArgumentParser) -> None:
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
    p.add_argument("--name", default=None, help="the dataset's name (default: its file name)")
    p.add_argument("--validation-file", default=None, help="a separate validation file (same columns)")
    p.add_argument("--test-file", default=None, help="a separate test file (same columns)")
    p.add_argument("--split-column", default=None, help="a column of train / validation / test per row")
    p.add_argument("--validation-fraction", type=float, default=0.1, help="held out for selection")
    p.add_argument("--test-fraction", type=float, default=0.1, help="held out for the final test (0: none)")


def dataset_ref(args: argparse.Namespace):
    from store.spec import DatasetRef

    return DatasetRef(
        source=args.dataset,
        text_column=args.text_column,
        text_pair_column=args.text_pair_column,
        label_column=args.label_column,
        max_train=args.max_train,
        max_val=args.max_val,
        seed=args.seed,
        name=args.name,
        validation_source=args.validation_file,
        test_source=args.test_file,
        split_column=args.split_column,
        validation_fraction=args.validation_fraction,
        test_fraction=args.test_fraction,
    )


def transfer_ref(args: argparse.Namespace):
    """``--transfer FILE``: unlabeled text in the dataset's text (and pair) columns."""
    from store.spec import TransferRef

    if not getattr(args, "transfer", None):
        return None
    return TransferRef(
        source=args.transfer, text_column=args.text_column, text_pair_column=args.text_pair_column
    )


def add_transfer_arg(p: argparse.ArgumentParser) -> None:
    help_ = (
        "unlabeled text (the dataset's formats and text column) the teacher labels; students also learn on it"
    )
    p.add_argument("--transfer", default=None, help=help_)


def _load_task(args: argparse.Namespace):
    from distill.data import load_subset
    from distill.transfer import attach_transfer

    task = load_subset(**dataset_ref(args).model_dump())
    ref = transfer_ref(args)
    return attach_transfer(task, **ref.model_dump()) if ref else task


def cmd_components(args: argparse.Namespace, settings: Settings) -> int:
    from distill.augment import AUGMENTATIONS
    from distill.losses import LOSSES
    from distill.mapping import MAPPINGS
    from distill.objectives import OBJECTIVES

    families = {
        "output losses": LOSSES,
        "intermediate objectives": OBJECTIVES,
        "augmentations": AUGMENTATIONS,
        "layer mappings": MAPPINGS,
    }
    listing = {kind: {e.name: e.description for e in reg.entries()} for kind, reg in families.items()}
    for e in AUGMENTATIONS.entries():
        if getattr(AUGMENTATIONS.get(e.name), "uses_mlm", False):
            listing["augmentations"][e.name] += " [needs a masked LM: submit --mlm, job mlm_id]"
    listing["augmentations"]["mixup (Augmentation.mixup)"] = "mixup of input embeddings and teacher targets"
    listing["training schedules (Training.stages)"] = {
        "single": "every loss term from the first epoch",
        "progressive": "intermediate objective alone, then the output distribution, then labels + output "
        "(TinyBERT / ERNIE-Tiny order; search parameter `progressive`)",
    }
    listing["teacher mixes (Pipeline.teachers)"] = {
        "single": "the job's teacher alone",
        "fixed": "soft targets of several teachers mixed with fixed weights [submit --extra-teacher, job "
        "extra_teacher_ids]",
        "confidence": "per example, weights × softmax over teachers of −CE(label) (confidence-weighted)",
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


def cmd_teacher(args: argparse.Namespace, settings: Settings) -> int:
    from distill.assets import minilm_dir
    from distill.finetune import FinetuneConfig, finetune_teacher

    task = _load_task(args)
    base = args.base or str(minilm_dir())
    cfg = FinetuneConfig(epochs=args.epochs, lr=args.lr, max_length=args.max_length, seed=args.seed)
    teacher = finetune_teacher(base, task, settings.teachers, cfg)
    print(teacher.model.name_or_path)
    return 0


def cmd_distill(args: argparse.Namespace, settings: Settings) -> int:
    from distill.engine import distill_student
    from distill.export import export_student
    from distill.pipeline import Pipeline
    from distill.teacher import load_teacher

    pipeline = Pipeline.model_validate_json(Path(args.pipeline).read_text()) if args.pipeline else Pipeline()
    task = _load_task(args)
    teacher = load_teacher(args.teacher)
    result = distill_student(task, teacher, pipeline, cache_dir=settings.teacher_outputs)
    folder = export_student(result, teacher, task, Path(args.out))
    print(json.dumps(result.metrics, indent=2))
    print(f"student saved to {folder}")
    return 0


def budget(args: argparse.Namespace):
    from store.spec import JobBudget

    return JobBudget(
        trials=args.trials,
        wall_seconds=args.wall_seconds,
        concurrency=args.concurrency,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        space=args.space,
        max_length=args.max_length,
        objectives=args.objectives.split(","),
        max_params=args.max_params,
        max_latency_ms=args.max_latency_ms,
        target_ratio=args.target_ratio,
        target_by=args.target_by,
        seed=args.seed,
    )


def _job_spec(args: argparse.Namespace):
    from store.spec import JobSpec, TeacherRef

    return JobSpec(
        dataset=dataset_ref(args),
        teacher=TeacherRef(path=args.teacher) if args.teacher else TeacherRef(base=args.base or "minilm"),
        budget=budget(args),
        transfer=transfer_ref(args),
    )


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    from workers.run import run_job_in_process

    job = run_job_in_process(_job_spec(args), settings, ray_address=args.ray_address)
    return 0 if job.state == JobState.FINISHED else 1


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from store.jobs import release_jobs
    from workers.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(
        settings, worker_id=args.worker_id, ray_address=args.ray_address, stale_after_s=args.stale_after
    )
    print(f"worker {worker.worker_id}: waiting for jobs in {worker.settings.database_url}", flush=True)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # Ray's own handler, once it starts, does the same
    supervised = os.environ.get(SUPERVISED_ENV) == "1" and os.getpgid(0) == os.getpid()
    if supervised:
        threading.Thread(target=_end_with_parent, args=(worker,), daemon=True).start()
    try:
        n = worker.run(once=args.once)
    except (KeyboardInterrupt, SystemExit):  # SIGTERM (serve stopping, or killed: PR_SET_PDEATHSIG), Ctrl-C
        released = release_jobs(worker.db, worker.worker_id)
        print(f"worker {worker.worker_id}: stopped; {released} job(s) released", flush=True)
        if supervised:
            os.killpg(os.getpid(), signal.SIGKILL)  # our Ray too: two of its agents ignore SIGTERM
        return 0
    print(f"worker {worker.worker_id}: processed {n} job(s)")
    return 0


SUPERVISED_ENV = "AUTODISTILLER_SUPERVISED"  # set by `serve` for the workers it starts, each in its own group


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _end_with_parent(worker: Any) -> None:
    """A supervised worker whose ``serve`` died (even by SIGKILL) releases its job and ends its whole process
    group, its Ray included — whatever became of SIGTERM (Ray's handler, a library that caught SystemExit)."""
    from store.jobs import release_jobs

    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(0.5)
    try:
        release_jobs(worker.db, worker.worker_id)
    finally:
        os.killpg(os.getpid(), signal.SIGKILL)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from autodistiller.demo import run_demo

    run_demo(settings, n_train=args.n_train, n_val=args.n_val, max_length=args.max_length, trials=args.trials)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from autodistiller.serve import serve

    serve(
        args.host,
        args.port,
        workers=args.workers,
        ray_address=args.ray_address,
        stale_after_s=args.stale_after,
        settings=settings,
    )
    return 0


def cmd_keys(args: argparse.Namespace, settings: Settings) -> int:
    from store import create_key, list_keys, make_engine, revoke_key, session_factory, upgrade

    url = settings.database_url
    upgrade(url)
    db = session_factory(make_engine(url))
    if args.action == "create":
        row, key = create_key(db, args.name)
        if args.quiet:
            print(key)
        else:
            print(f"{key}\n(key {row.id} '{row.name}': shown once, stored hashed; send it as "
                  f"`Authorization: Bearer <key>`)")  # fmt: skip
    elif args.action == "list":
        for k in list_keys(db):
            state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
            print(f"{k.id}  {k.prefix}…  {k.name:<20}  created {k.created_at:%Y-%m-%d %H:%M}  {state}")
    else:
        if not revoke_key(db, args.id):
            print(f"autodistiller: error: no active key {args.id}", file=sys.stderr)
            return 2
        print(f"revoked {args.id}")
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from store import current_revision, upgrade

    upgrade(settings.database_url)
    print(f"database at revision {current_revision(settings.database_url)}")
    return 0
