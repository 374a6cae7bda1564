"""Teacher outputs at scale: the cache's size on disk, what a trial receives through Ray's object store, and
a trial's peak resident memory.

    nice -n 10 python -m bench.outputs_memory --n 2000 --max-length 64

The demo's teacher (MiniLM-L6, 384 wide, 12 heads; its classifier head random: memory does not depend on
it), ``n`` Rotten Tomatoes reviews, the layers the demo's ``small`` space can read for a 2-layer student.
``prepare`` (this process) computes the outputs into a fresh cache folder and pickles the ``TrialInputs``
as ``ray.put`` would; then a fresh Python process unpickles them and runs one real trial (``run_trial``:
one epoch of ``hidden_mse`` on hidden states and attention maps, a small student, one thread), and reports
its peak RSS (``ru_maxrss``). Ray itself is left out so that the figure is the trial's own. Both run as
children of a small parent: Linux carries a parent's peak RSS over fork and exec.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MB = 2**20


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def prepare(folder: Path, n: int, max_length: int) -> dict[str, object]:
    import torch

    from distill.assets import minilm_dir
    from distill.data import load_task
    from distill.encoding import encode_fixed
    from distill.hf import load_classifier, load_tokenizer
    from distill.pipeline import IntermediateSpec, Pipeline, StudentArch, Training
    from distill.teacher import load_teacher
    from distill.teacher_outputs import teacher_outputs
    from search.space import SearchSpace
    from search.trainable import TrialInputs

    task = load_task("rotten_tomatoes").subset(n, 200, seed=0)
    load_classifier(minilm_dir(), num_labels=2).save_pretrained(folder / "teacher")
    load_tokenizer(minilm_dir()).save_pretrained(folder / "teacher")
    teacher = load_teacher(folder / "teacher")
    student = StudentArch(layers=2, hidden=128, heads=4, ffn=256, init="random")  # cheap: memory is the point
    training = Training(lr=1e-4, epochs=1, batch_size=32, max_length=max_length, seed=0)
    space = SearchSpace.small([student], training=training)
    hidden, attention = space.teacher_layers_needed(teacher.num_layers)
    train = encode_fixed(task.train, teacher.tokenizer, max_length, torch.arange(task.num_labels))
    enc = {k: getattr(train, k) for k in ("input_ids", "attention_mask", "token_type_ids")}
    t0 = time.perf_counter()
    outputs = teacher_outputs(
        teacher,
        enc,
        hidden_layers=hidden,
        attention_layers=attention,
        cache_dir=folder / "cache",
        progress=True,
    )
    seconds = time.perf_counter() - t0
    inputs = TrialInputs(task, str(folder / "teacher"), outputs, space)
    shipped = pickle.dumps(inputs)
    (folder / "inputs.pkl").write_bytes(shipped)
    pipe = Pipeline(
        student=student,
        training=training,
        intermediate=IntermediateSpec(name="hidden_mse", features="both", mapping="skip"),
    )
    (folder / "params.pkl").write_bytes(pickle.dumps(space.to_params(pipe)))
    disk = sum(p.stat().st_size for p in (folder / "cache").rglob("*") if p.is_file())
    return {
        "layers": f"hidden {sorted(hidden)}, attention {sorted(attention)}",
        "compute_s": seconds,
        "disk_mb": disk / MB,
        "shipped_mb": len(shipped) / MB,
        "prepare_peak_mb": _peak_mb(),
    }


def trial(folder: Path) -> dict[str, float]:
    import torch

    from search.trainable import run_trial

    torch.set_num_threads(1)
    import_peak = _peak_mb()
    inputs = pickle.loads((folder / "inputs.pkl").read_bytes())
    params = pickle.loads((folder / "params.pkl").read_bytes())
    loaded_peak = _peak_mb()
    t0 = time.perf_counter()
    metrics = run_trial(params, {"inputs": inputs}, lambda _: None)
    return {
        "import_peak_mb": import_peak,
        "loaded_peak_mb": loaded_peak,
        "trial_peak_mb": _peak_mb(),
        "trial_s": time.perf_counter() - t0,
        "accuracy": metrics["accuracy"],
    }


def _child(*args: str) -> str:
    """Run this script in a fresh interpreter (forked from this small one: peak RSS is the child's own)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "bench.outputs_memory", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the child processes
    ap.add_argument("--trial", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.prepare:
        print("RESULT " + json.dumps(prepare(args.prepare, args.n, args.max_length)))
        return
    if args.trial:
        print("RESULT " + json.dumps(trial(args.trial)))
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        prep = json.loads(
            _child("--prepare", tmp, "--n", str(args.n), "--max-length", str(args.max_length)).split(
                "RESULT "
            )[1]
        )
        child = json.loads(_child("--trial", tmp).split("RESULT ")[1])
    print(f"{args.n} examples x {args.max_length} tokens; {prep['layers']}")
    rows = [
        ("teacher outputs computed (s)", f"{prep['compute_s']:.0f}"),
        ("cache on disk (MB)", f"{prep['disk_mb']:.1f}"),
        ("per example on disk (KB)", f"{prep['disk_mb'] * 1024 / args.n:.0f}"),
        ("TrialInputs pickled, i.e. via the object store (MB)", f"{prep['shipped_mb']:.2f}"),
        ("driver peak RSS while computing (MB)", f"{prep['prepare_peak_mb']:.0f}"),
        ("trial peak RSS after imports (MB)", f"{child['import_peak_mb']:.0f}"),
        ("trial peak RSS after unpickling inputs (MB)", f"{child['loaded_peak_mb']:.0f}"),
        ("trial peak RSS after one epoch (MB)", f"{child['trial_peak_mb']:.0f}"),
        ("trial wall time (s)", f"{child['trial_s']:.0f}"),
        ("trial validation accuracy", f"{child['accuracy']:.3f}"),
    ]
    for name, value in rows:
        print(f"{name:<54}{value:>10}")


if __name__ == "__main__":
    main()
