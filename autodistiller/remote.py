"""The command line's API verbs: submit, status, leaderboard, download (through ``service.client``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from autodistiller.local import budget, dataset_ref, transfer_ref
from store.settings import Settings
from store.states import JobState

_TRANSFER_COLUMNS = {"text_column", "text_pair_column"}


def _client(args: argparse.Namespace, settings: Settings):
    from service.client import Client

    return Client.from_settings(settings, url=args.url, key=args.key)


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


def cmd_submit(args: argparse.Namespace, settings: Settings) -> int:
    client = _client(args, settings)
    data = client.dataset(args.dataset, **dataset_ref(args).model_dump(exclude={"source"}))
    profile = data.profile
    print(f"dataset {data.id}: {data.name} ({profile.get('train')} train / {profile.get('validation')} "
          f"validation, {len(profile.get('labels', []))} classes)")  # fmt: skip
    teacher = client.teacher(args.teacher or "minilm")
    print(f"teacher {teacher.id}: {teacher.name} ({teacher.profile.get('params', 0):,} params)")
    extra = [client.teacher(source).id for source in args.extra_teacher or []]
    mlm = client.teacher(args.mlm, masked_lm=True).id if args.mlm else None
    transfer = None
    if (ref := transfer_ref(args)) is not None:
        transfer = client.dataset(ref.source, unlabeled=True, **ref.model_dump(include=_TRANSFER_COLUMNS))
        print(f"transfer text {transfer.id}: {transfer.name} ({transfer.profile.get('rows')} rows)")
    job = client.submit(
        data.id, teacher.id, budget(args), idempotency_key=args.idempotency_key, extra_teacher_ids=extra,
        mlm_id=mlm, transfer_id=transfer.id if transfer else None,
    )  # fmt: skip
    print(f"job {job.id} queued; follow it with `autodistiller status {job.id} --watch`")
    if not args.wait:
        return 0
    job = _watch(client, job.id)
    _print_job(job)
    return 0 if job.state == JobState.FINISHED else 1


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    client = _client(args, settings)
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
        for s in rec.students:
            test = f"{s.test_accuracy:.4f}" if s.test_accuracy is not None else "-"
            get = f"autodistiller download {args.job} --trial {s.trial_number} --out DIR"
            print(f"  trial {s.trial_number} ({', '.join(s.roles)}): validation {s.accuracy:.4f}, "
                  f"test {test}, {s.params:,} params; `{get}`")  # fmt: skip
        pred = rec.predicted
        if pred is not None and rec.source == "measured":
            measured = (
                f"{pred.measured_accuracy:.4f}" if pred.measured_accuracy is not None else "not trained"
            )
            print(f"  predicted before the first trial: {describe(pred.pipeline)} (measured: {measured})")
    return 0


def cmd_leaderboard(args: argparse.Namespace, settings: Settings) -> int:
    from workers.report import leaderboard_table

    client = _client(args, settings)
    job = client.job(args.job)
    page = client.trials(args.job, sort=args.sort, status=args.status, limit=args.limit)
    print(leaderboard_table(page.items, job.teacher_accuracy))
    print(f"({len(page.items)} of {page.total} trials)")
    return 0


def cmd_download(args: argparse.Namespace, settings: Settings) -> int:
    client = _client(args, settings)
    folder = client.download_student(args.job, Path(args.out), trial=args.trial, format=args.format)
    how = {
        "safetensors": "load it with transformers.AutoModelForSequenceClassification",
        "onnx": "run model.onnx with onnxruntime; the tokenizer with transformers.AutoTokenizer",
        "onnx-int8": "run model-int8.onnx with onnxruntime; the tokenizer with transformers.AutoTokenizer",
    }[args.format]
    print(f"student saved to {folder} ({how})")
    return 0
