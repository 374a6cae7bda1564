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
    from distill.finetune import FinetuneConfig, finetune_teacher
    from distill.settings import Settings

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


def _budget(args: argparse.Namespace):
    from service.schemas import JobBudget

    return JobBudget(
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
    )


def _job_spec(args: argparse.Namespace):
    from service.schemas import JobSpec, TeacherRef

    return JobSpec(
        dataset=_dataset_ref(args),
        teacher=TeacherRef(path=args.teacher) if args.teacher else TeacherRef(base=args.base or "minilm"),
        budget=_budget(args),
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


# ---------------------------------------------------------------------------------------------- the service


def cmd_serve(args: argparse.Namespace) -> int:
    from service.serve import serve

    serve(
        args.host,
        args.port,
        workers=args.workers,
        ray_address=args.ray_address,
        stale_after_s=args.stale_after,
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from distill.settings import Settings
    from service.db import create_key, list_keys, make_engine, revoke_key, session_factory, upgrade

    url = Settings.from_env().database_url
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


def _client(args: argparse.Namespace):
    from service.client import Client

    return Client.from_settings(url=args.url, key=args.key)


def _watch(client, job_id: str):
    from tqdm.auto import tqdm

    job = client.job(job_id)
    bar = tqdm(total=job.progress.trials_budget, desc=f"job {job_id[:8]}", unit="trial")
    try:
        for job in client.events(job_id):
            bar.n = job.progress.trials_done
            best = f"{job.best_accuracy:.4f}" if job.best_accuracy is not None else "-"
            bar.set_postfix_str(f"{job.state}, best {best}")
            bar.refresh()
    finally:
        bar.close()
    return client.job(job_id)


def _print_job(job) -> None:
    best = f"{job.best_accuracy:.4f}" if job.best_accuracy is not None else "-"
    teacher = f"{job.teacher_accuracy:.4f}" if job.teacher_accuracy is not None else "-"
    eta = f", ETA {job.eta_seconds:.0f} s" if job.eta_seconds is not None else ""
    print(f"job {job.id}: {job.state} — {job.progress.trials_done}/{job.progress.trials_budget} trials, "
          f"best {best} (teacher {teacher}){eta}")  # fmt: skip
    if job.progress.text:
        print(f"  {job.progress.text}")
    if job.error:
        print(f"  error: {job.error}")


def cmd_submit(args: argparse.Namespace) -> int:
    client = _client(args)
    data = client.dataset(args.dataset, **_dataset_ref(args).model_dump(exclude={"source"}))
    profile = data.profile
    print(f"dataset {data.id}: {data.name} ({profile.get('train')} train / {profile.get('validation')} "
          f"validation, {len(profile.get('labels', []))} classes)")  # fmt: skip
    teacher = client.teacher(args.teacher or "minilm")
    print(f"teacher {teacher.id}: {teacher.name} ({teacher.profile.get('params', 0):,} params)")
    job = client.submit(data.id, teacher.id, _budget(args), idempotency_key=args.idempotency_key)
    print(f"job {job.id} queued; follow it with `autodistiller status {job.id} --watch`")
    if not args.wait:
        return 0
    job = _watch(client, job.id)
    _print_job(job)
    return 0 if job.state == "finished" else 1


def cmd_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.job is None:
        for job in client.jobs(limit=args.limit).items:
            _print_job(job)
        return 0
    job = _watch(client, args.job) if args.watch else client.job(args.job)
    _print_job(job)
    rec = client.recommendation(args.job)
    if rec.available and rec.pipeline is not None:
        from distill.pipeline import describe

        print(f"  recommended ({rec.source}{', final' if rec.final else ''}): "
              f"{describe(rec.pipeline)}\n  why: {rec.why}")  # fmt: skip
        pred = rec.predicted
        if pred is not None and rec.source == "measured":
            measured = (
                f"{pred.measured_accuracy:.4f}" if pred.measured_accuracy is not None else "not trained"
            )
            print(f"  predicted before the first trial: {describe(pred.pipeline)} (measured: {measured})")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from workers.report import leaderboard_table

    client = _client(args)
    job = client.job(args.job)
    page = client.trials(args.job, sort=args.sort, status=args.status, limit=args.limit)
    print(leaderboard_table(page.items, job.teacher_accuracy))
    print(f"({len(page.items)} of {page.total} trials)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    folder = _client(args).download_student(args.job, Path(args.out))
    print(f"student saved to {folder} (load it with transformers.AutoModelForSequenceClassification)")
    return 0


def _add_api_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url", default=None, help="API URL (default: AUTODISTILLER_URL or http://127.0.0.1:8000)"
    )
    p.add_argument("--key", default=None, help="API key (default: AUTODISTILLER_API_KEY or the local key)")


def _add_budget_args(p: argparse.ArgumentParser) -> None:
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
    _add_budget_args(p)
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    p.set_defaults(fn=cmd_search)

    p = sub.add_parser("worker", help="claim queued jobs from the database and run them")
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    p.add_argument("--once", action="store_true", help="exit when no job is left")
    p.add_argument(
        "--stale-after", type=float, default=30.0, help="seconds without heartbeat before a job is taken over"
    )
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("serve", help="run the HTTP API with in-process workers (SQLite by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes to start (0: an API-only node)")
    p.add_argument("--ray-address", default=None, help="workers join this Ray cluster (default: local Ray)")
    p.add_argument(
        "--stale-after", type=float, default=30.0, help="seconds without heartbeat before a job is taken over"
    )
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("keys", help="admin: create, list or revoke API keys (directly in the database)")
    keys = p.add_subparsers(dest="action", required=True)
    k = keys.add_parser("create", help="a new key (printed once)")
    k.add_argument("--name", required=True, help="who the key is for")
    k.add_argument("--quiet", action="store_true", help="print only the key")
    keys.add_parser("list", help="every key (prefix, name, state)")
    k = keys.add_parser("revoke", help="revoke a key by id or prefix")
    k.add_argument("id")
    p.set_defaults(fn=cmd_keys)

    p = sub.add_parser("submit", help="upload/register a dataset and teacher, and submit a job to the API")
    _add_data_args(p)
    p.add_argument("--teacher", help="local model folder (uploaded), Hub id, or `minilm` (the default)")
    _add_budget_args(p)
    p.add_argument("--idempotency-key", default=None, help="repeat the submission safely")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    _add_api_args(p)
    p.set_defaults(fn=cmd_submit)

    p = sub.add_parser("status", help="a job's state, progress and recommendation (no job: my jobs)")
    p.add_argument("job", nargs="?")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends")
    p.add_argument("--limit", type=int, default=20)
    _add_api_args(p)
    p.set_defaults(fn=cmd_status)

    p = sub.add_parser("leaderboard", help="a job's trials, best first")
    p.add_argument("job")
    p.add_argument("--sort", default="-accuracy", help="a column, `-` first for descending")
    p.add_argument("--status", action="append", choices=["running", "completed", "pruned", "failed"])
    p.add_argument("--limit", type=int, default=20)
    _add_api_args(p)
    p.set_defaults(fn=cmd_leaderboard)

    p = sub.add_parser("download", help="download a job's best student as a Hugging Face model folder")
    p.add_argument("job")
    p.add_argument("--out", required=True, help="a new folder for the student")
    _add_api_args(p)
    p.set_defaults(fn=cmd_download)

    p = sub.add_parser("components", help="list every registered loss, objective and augmentation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_components)
    return parser


def main(argv: list[str] | None = None) -> int:
    from distill.data import DataError
    from distill.hf import ModelError
    from distill.registry import UnknownComponentError
    from service.client import ApiError

    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    errors = (
        DataError,
        ModelError,
        UnknownComponentError,
        ValidationError,
        FileNotFoundError,
        FileExistsError,
    )
    try:
        code = args.fn(args)
    except (*errors, ApiError) as e:
        print(f"autodistiller: error: {e}", file=sys.stderr)
        return 2
    if args.command not in ("components", "keys", "status", "leaderboard"):
        print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
