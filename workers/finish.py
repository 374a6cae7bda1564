"""The last stage of a job: choose the answer (the most accurate, or the target ratio's), keep the students a
user may download (the answer, the Pareto front, the references), measure them and the teacher once on the
test split, store the measured recommendation, mark the job finished, and retrain the recommender."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from distill.engine import distill_student
from distill.export import export_student, final_card
from distill.holdout import speed_text
from distill.pipeline import Pipeline, describe
from search.pareto import pareto_front
from search.tune_events import TrialRecord
from store import results, trials
from store.inputs import get_entry
from store.models import TeacherEntry, Trial
from store.states import JobState, TrialStatus
from workers import recommend
from workers.evaluate import choose, export_formats, keep, summary, test_all, test_every
from workers.recorder import TrialRecorder
from workers.stages import JobRun, Profiled

log = logging.getLogger(__name__)


def finish(run: JobRun, prof: Profiled, recorder: TrialRecorder) -> None:
    trials.backfill_gain(run.db, run.job.id)
    done = trials.finished_trials(run.db, run.job.id)
    completed = [t for t in done if t.status == TrialStatus.COMPLETED and t.accuracy is not None]
    if not completed:
        raise RuntimeError("no trial completed; see the failed trials' errors")
    chosen, target = choose(completed, prof.teacher_profile["accuracy"], run.job.budget)
    roles = keep(completed, chosen)
    every = {}
    if run.spec.budget.test_every:  # before the unkept students' folders are removed
        run.state(JobState.SEARCHING, progress_text="testing every trial's student on the test split")
        dirs = {t.number: run.artifacts / "trials" / t.pipeline_key for t in completed}
        every = test_every(prof, run.spec.budget.max_length, {n: d for n, d in dirs.items() if d.is_dir()})
    run.state(JobState.SEARCHING, progress_text="keeping the chosen, reference and Pareto-front students")
    folders = keep_students(run, prof, [t for t in completed if t.number in roles], chosen)
    run.state(JobState.SEARCHING, progress_text="exporting the kept students to ONNX and int8")
    formats = export_formats(prof, folders, run.spec.budget.max_length)
    run.state(JobState.SEARCHING, progress_text="testing the teacher and kept students on the test split")
    doc = test_all(prof, run.spec.budget.max_length, folders, chosen.number)
    refs = {t.is_reference: t for t in completed if t.is_reference}
    head = (
        f"{target['text']} (trial {chosen.number})"
        if target
        else results.measured_why(run.db, run.job.id, chosen)
    )
    why = f"{head}; {summary(chosen, refs, doc, {})}"
    evaluation = {
        "split": prof.task.meta.get("split"), "kept": {str(k): v for k, v in roles.items()}, "target": target,
        "recommended": chosen.number, "downloadable": sorted(folders), "formats": formats, **doc,
        **({"every_trial": every} if run.spec.budget.test_every else {}),
    }  # fmt: skip
    results.add_profile(run.db, "evaluation", evaluation, job_id=run.job.id)
    write_cards(run, prof, completed, folders, evaluation)
    record_students(run, completed, folders, chosen)
    results.add_recommendation(
        run.db, run.job.id, chosen.pipeline, "measured", score=chosen.accuracy, why=why,
        details={"trial": chosen.number, "target": target},
    )  # fmt: skip
    objectives = run.job.budget.get("objectives") or ["accuracy"]
    if len(objectives) > 1:
        store_pareto_front(run, objectives)
    run.state(JobState.FINISHED, progress_text=why[:500])
    try:  # learn from this job for the next ones; the job itself is done either way
        recommend.refresh(run.db, run.settings)
    except Exception:
        log.exception("job %s: could not retrain the recommender", run.job.id)


def keep_students(run: JobRun, prof: Profiled, kept: list[Trial], chosen: Trial) -> dict[int, Path]:
    """The kept trials' student folders moved to ``students/<trial number>/`` (the answer re-trained if its
    folder is gone, e.g. an earlier worker died); every other trial's folder is removed."""
    out = run.artifacts / "students"
    found: dict[int, Path] = {}
    for t in kept:
        src, dest = run.artifacts / "trials" / t.pipeline_key, out / str(t.number)
        shutil.rmtree(dest, ignore_errors=True)
        if src.is_dir():
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.rename(dest)
        elif t.number == chosen.number:
            run.state(JobState.SEARCHING, progress_text="re-training the recommended pipeline for export")
            pipeline = Pipeline.model_validate(t.pipeline)
            res = distill_student(prof.task, prof.teacher, pipeline, progress=False)
            export_student(res, prof.teacher, prof.task, dest)
        else:
            continue
        found[t.number] = dest
    shutil.rmtree(run.artifacts / "trials", ignore_errors=True)
    return found


def record_students(run: JobRun, completed: list[Trial], folders: dict[int, Path], chosen: Trial) -> None:
    """One artifact per kept student (``pareto_student``), the answer last as ``student``: the default
    download."""
    by_number = {t.number: t for t in completed}
    for number in sorted(folders, key=lambda n: n == chosen.number):
        folder = folders[number]
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        rel = folder.relative_to(run.settings.home).as_posix()
        kind = "student" if number == chosen.number else "pareto_student"
        results.add_artifact(run.db, run.job.id, kind, rel, size=size, trial_id=by_number[number].id)


def write_cards(
    run: JobRun, prof: Profiled, completed: list[Trial], folders: dict[int, Path], evaluation: dict
) -> None:
    """Each kept student's model card: what its pipeline did, validation and test with intervals, the
    teacher by name, the speed settings, Hub card metadata."""
    teacher = get_entry(run.db, TeacherEntry, run.job.teacher_id) if run.job.teacher_id else None
    source = prof.teacher.source
    teacher_name = teacher.name if teacher else Path(source).name or source
    hub_id = source if "/" in source and not Path(source).exists() else None
    by_number = {t.number: t for t in completed}
    for number, folder in folders.items():
        t = by_number[number]
        details = {
            "pipeline": t.pipeline, "trial": number, "roles": evaluation["kept"].get(str(number)),
            "split": evaluation.get("split"),
            "teacher": {"name": teacher_name, "params": prof.teacher.num_params},
            "speed": evaluation.get("speed") if number == evaluation["recommended"] else None,
        }  # fmt: skip
        card = _card(prof, t, evaluation, teacher_name)
        final_card(folder, base_model=hub_id, dataset=prof.task.name, details=details, **card)


def _card(prof: Profiled, t: Trial, evaluation: dict, teacher_name: str) -> dict[str, str]:
    """Title, summary, results table and speed line of one student's card."""
    p = Pipeline.model_validate(t.pipeline)
    uses_kd = p.loss.name != "ce_only" or p.intermediate.name != "none"
    how = f"distilled from the teacher `{teacher_name}`" if uses_kd else "trained on the labels only (no KD)"
    test = evaluation.get("trials", {}).get(str(t.number))
    rows = ["| model | validation accuracy | test accuracy (95% CI) |", "|---|---|---|"]

    def cell(m: dict | None) -> str:
        return f"{m['accuracy']:.4f} ({m['low']:.3f}–{m['high']:.3f}, n={m['n']})" if m else "—"

    rows.append(f"| this student | {t.accuracy:.4f} | {cell(test)} |")
    rows.append(f"| teacher `{teacher_name}` | {prof.teacher_profile['accuracy']:.4f} | "
                f"{cell(evaluation.get('teacher'))} |")  # fmt: skip
    speed = evaluation.get("speed") if t.number == evaluation.get("recommended") else None
    return {
        "title": f"Student ({p.student.layers} layers × {p.student.hidden}) for {prof.task.name}",
        "summary": f"AutoDistiller trial {t.number}: {describe(p)}; {how}, on `{prof.task.name}`.",
        "results": "\n".join(rows),
        "speed": f"Speed: {speed_text(speed)}." if speed else "",
    }


def store_pareto_front(run: JobRun, objectives: list[str]) -> None:
    """Multi-objective jobs keep the Pareto front of their completed trials."""
    done = [t for t in trials.finished_trials(run.db, run.job.id) if t.status == TrialStatus.COMPLETED]
    records = [
        TrialRecord(str(t.number), {}, {o: getattr(t, o) for o in objectives})
        for t in done
        if all(getattr(t, o) is not None for o in objectives)
    ]
    modes = [(o, "max" if o == "accuracy" else "min") for o in objectives]
    front = sorted(int(r.trial_id) for r in pareto_front(records, modes))
    results.add_profile(run.db, "pareto", {"objectives": objectives, "trials": front}, job_id=run.job.id)
