"""The job use cases the API routes and the dashboard share: queue a job, a job as the API shows it, the
recommendation now. Routes stay thin; the pages call these, never a route handler."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError

from distill.onnx_export import FORMATS
from distill.pipeline import Pipeline
from distill.tables import DataError
from service.deps import Context, owned_dataset, owned_teacher
from service.inputs import check_pair
from service.schemas import (
    JobOut,
    JobRequest,
    PredictedOut,
    Progress,
    RecommendationOut,
    StudentLink,
    TeacherSummary,
)
from store import (
    TERMINAL_STATES,
    ApiKey,
    Job,
    create_job,
    get_profile,
    latest_recommendation,
    leaderboard,
    trial_for_pipeline,
    utcnow,
)
from store.jobs import IdempotencyConflict
from store.models import Trial
from store.results import measured_why, trial_rows
from store.spec import JobBudget, JobSpec
from store.states import JobState


def job_out(job: Job) -> JobOut:
    base = f"/v1/jobs/{job.id}"
    done, budget = job.trials_done, job.trials_budget
    return JobOut(
        id=job.id,
        state=job.state,  # type: ignore[arg-type]
        dataset_id=job.dataset_id,
        teacher_id=job.teacher_id,
        extra_teacher_ids=(job.extra_ids or {}).get("extra_teacher_ids", []),
        mlm_id=(job.extra_ids or {}).get("mlm_id"),
        budget=JobBudget.model_validate(job.budget),
        progress=Progress(
            trials_done=done,
            trials_budget=budget,
            fraction=1.0 if job.state == "finished" else min(1.0, done / budget) if budget else 0.0,
            text=job.progress_text,
        ),
        best_accuracy=job.best_accuracy,
        best_trial_id=job.best_trial_id,
        teacher_accuracy=job.teacher_accuracy,
        eta_seconds=_eta(job),
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        urls={
            "self": base,
            "events": f"{base}/events",
            "recommendation": f"{base}/recommendation",
            "trials": f"{base}/trials",
            "student": f"{base}/student",
            "cancel": f"{base}/cancel",
        },
    )


def _eta(job: Job) -> float | None:
    """Seconds left at the pace of the trials so far, capped by the job's wall-clock budget."""
    if job.state in TERMINAL_STATES or job.started_at is None or not job.trials_done or not job.trials_budget:
        return None
    elapsed = (utcnow() - job.started_at).total_seconds()
    left = elapsed / job.trials_done * max(0, job.trials_budget - job.trials_done)
    wall = (job.budget or {}).get("wall_seconds")
    return round(min(left, max(0.0, wall - elapsed)) if wall else left, 1)


def queue_job(ctx: Context, key: ApiKey, body: JobRequest, idempotency_key: str | None = None) -> Job:
    """Check that the caller owns the dataset and teacher and that they match, then queue the job (the API
    and the dashboard's form both submit through here)."""
    dataset = owned_dataset(ctx, key, body.dataset_id)
    if dataset.ref.get("unlabeled"):
        raise HTTPException(422, f"dataset {dataset.id} is unlabeled transfer text: give it as `transfer_id`")
    transfer = owned_dataset(ctx, key, body.transfer_id) if body.transfer_id else None
    if transfer is not None and not transfer.ref.get("unlabeled"):
        raise HTTPException(
            422, f"{transfer.id} is a labelled dataset (register transfer text as `unlabeled`)"
        )
    teachers = [owned_teacher(ctx, key, i) for i in (body.teacher_id, *body.extra_teacher_ids)]
    for i, teacher in enumerate(teachers):
        what = "teacher" if i == 0 else f"extra teacher {teacher.id}"
        if teacher.profile.get("masked_lm"):
            raise HTTPException(422, f"{what} is a masked LM, not a teacher: give it as `mlm_id`")
        if i and not teacher.profile.get("fine_tuned"):
            raise HTTPException(422, f"{what} is a base encoder: an extra teacher must be fine-tuned")
        try:
            check_pair(dataset, teacher)
        except DataError as e:
            raise HTTPException(422, f"{what} and the dataset do not match: {e}") from None
    if len(set(body.extra_teacher_ids) | {body.teacher_id}) != len(teachers):
        raise HTTPException(422, "a teacher is given twice")
    mlm = owned_teacher(ctx, key, body.mlm_id) if body.mlm_id else None
    if mlm is not None and not mlm.profile.get("masked_lm"):
        raise HTTPException(422, f"{mlm.id} is not a masked LM (register one with `masked_lm: true`)")
    spec = {
        "dataset": dataset.ref,
        "teacher": teachers[0].ref,
        "budget": body.budget.model_dump(mode="json"),
        "extra_teachers": [t.ref for t in teachers[1:]],
        "mlm": mlm.ref["path"] if mlm else None,
        "transfer": transfer.ref if transfer else None,
    }
    try:
        JobSpec.model_validate(spec)  # the parts agree (a warm start's teachers and masked LM)
    except ValidationError as e:
        raise HTTPException(422, "; ".join(err["msg"] for err in e.errors())) from None
    ids = {"extra_teacher_ids": list(body.extra_teacher_ids), "mlm_id": body.mlm_id}
    ids |= {"transfer_id": body.transfer_id} if body.transfer_id else {}
    try:
        return create_job(
            ctx.db,
            **spec,
            owner=key.id,
            idempotency_key=idempotency_key,
            dataset_id=dataset.id,
            teacher_id=teachers[0].id,
            extra_ids=ids if body.extra_teacher_ids or body.mlm_id or body.transfer_id else None,
        )
    except IdempotencyConflict as e:
        raise HTTPException(422, str(e)) from None


def recommendation_out(ctx: Context, job: Job) -> RecommendationOut:
    """The pipeline recommended now: predicted before any trial, then the best measured (the API's answer and
    the dashboard's panel)."""
    prof = get_profile(ctx.db, "teacher", job_id=job.id)
    t = prof.data if prof else {}
    teacher = TeacherSummary(
        accuracy=t.get("accuracy", job.teacher_accuracy),
        params=t.get("params"),
        latency_ms=t.get("latency_ms"),
    )
    rec = latest_recommendation(ctx.db, job.id)
    predicted = predicted_out(ctx, job.id)
    best = leaderboard(ctx.db, job.id, sort="-accuracy", status="completed", limit=1)
    if not best:
        if predicted is not None:
            return RecommendationOut(
                job_id=job.id, available=True, source="predicted", pipeline=predicted.pipeline,
                teacher=teacher, why=predicted.why, predicted=predicted,
            )  # fmt: skip
        why = f"no trial has finished yet (job {job.state}: {job.progress_text})"
        if job.state in (JobState.FAILED, JobState.CANCELLED):
            why = f"the job {job.state} before any trial finished" + (f": {job.error}" if job.error else "")
        return RecommendationOut(job_id=job.id, available=False, teacher=teacher, why=why)
    top = best[0]
    final = job.state == "finished"
    if final and rec is not None and rec.source == "measured":
        why = rec.why
    else:
        why = f"{measured_why(ctx.db, job.id, top)} (so far: the job is {job.state})"
    evaluation = get_profile(ctx.db, "evaluation", job_id=job.id) if final else None
    held: dict = {}
    if evaluation is not None:
        rows = {t.number: t for t in trial_rows(ctx.db, job.id)}
        top, held = held_out_answer(job.id, evaluation.data, rows)
    speedup = teacher.latency_ms / top.latency_ms if top.latency_ms and teacher.latency_ms else None
    return RecommendationOut(
        job_id=job.id,
        available=True,
        source="measured",
        final=final,
        pipeline=top.pipeline,
        trial_id=top.id,
        accuracy=top.accuracy,
        ratio_to_teacher=top.ratio_to_teacher,
        params=top.params,
        latency_ms=top.latency_ms,
        teacher=teacher,
        size_ratio=top.params / teacher.params if top.params and teacher.params else None,
        why=why,
        predicted=predicted,
        **{"speedup": speedup, **held},
    )


def held_out_answer(job_id: str, doc: dict[str, Any], rows: dict[int, Trial]) -> tuple[Trial, dict[str, Any]]:
    """A finished job's answer from its ``evaluation`` profile: the recommended trial, its test figures and
    the teacher's and references' beside them, the side-by-side speed, the target's verdict, and every
    downloadable student."""
    chosen = rows[int(doc["recommended"])]
    tests = doc.get("trials") or {}
    refs = {t.is_reference: tests[str(n)] for n, t in rows.items() if t.is_reference and str(n) in tests}
    speed = doc.get("speed")
    students = [
        StudentLink(
            trial_number=int(n),
            roles=roles,
            accuracy=rows[int(n)].accuracy,
            test_accuracy=(tests.get(n) or {}).get("accuracy"),
            params=rows[int(n)].params,
            latency_ms=rows[int(n)].latency_ms,
            url=f"/v1/jobs/{job_id}/student?trial={n}",
            **_formats((doc.get("formats") or {}).get(n)),
        )
        for n, roles in (doc.get("kept") or {}).items()
        if int(n) in rows and int(n) in doc.get("downloadable", [int(n)])
    ]
    return chosen, {
        "trial_number": chosen.number,
        "test": tests.get(str(chosen.number)),
        "teacher_test": doc.get("teacher"),
        "references_test": refs,
        "speed": speed,
        "target": doc.get("target") or None,
        "students": students,
        **({"speedup": speed["speedup"]} if speed and speed.get("speedup") else {}),
    }


def _formats(export: dict[str, Any] | None) -> dict[str, Any]:
    """A kept student's download formats and their sizes, from its ONNX export's report (none: before ONNX
    export existed, or it failed)."""
    if not export or "error" in export:
        return {}
    sizes = export.get("bytes") or {}
    return {"formats": [f for f in FORMATS if f in sizes], "sizes": sizes}


def predicted_out(ctx: Context, job_id: str) -> PredictedOut | None:
    """The job's predicted recommendation, with the accuracy the search measured for it, if it ran."""
    rec = latest_recommendation(ctx.db, job_id, source="predicted")
    if rec is None:
        return None
    d = rec.details or {}
    trial = trial_for_pipeline(ctx.db, job_id, Pipeline.model_validate(rec.pipeline).key())
    return PredictedOut(
        method="model" if d.get("method") == "model" else "priors",
        pipeline=rec.pipeline,
        percentile=d.get("percentile"),
        model_version=d.get("model_version"),
        trained_on=d.get("trained_on"),
        held_out=d.get("held_out"),
        nearest=d.get("nearest", []),
        alternatives=[a for a in d.get("alternatives", []) if isinstance(a, dict)],
        measured_accuracy=trial.accuracy if trial is not None else None,
        why=rec.why,
    )
