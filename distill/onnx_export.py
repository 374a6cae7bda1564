"""ONNX and dynamic-int8 copies of an exported student folder, checked against PyTorch with onnxruntime.

Layout: ``<folder>/onnx/model.onnx`` (fp32) and ``<folder>/onnx/model-int8.onnx`` (weights int8, activations
quantised on the fly: ``onnxruntime.quantization.quantize_dynamic``, ``QInt8``), beside the safetensors, so
the folder stays what ``AutoModelForSequenceClassification.from_pretrained`` loads (it ignores the
subfolder; Optimum and transformers.js read the same ``onnx/`` place). Inputs: ``input_ids``,
``attention_mask`` and ``token_type_ids`` where the model takes them, all ``int64 [batch, sequence]`` with
both axes dynamic; output: ``logits [batch, num_labels]``.

The exporter is ``torch.onnx.export(dynamo=True)`` (torch.export + onnxscript): the legacy TorchScript tracer
(``dynamo=False``) bakes the traced sequence length into transformers 5's attention-mask code, and its
logits drift by ~3e-3 at other lengths; the dynamo graph matches PyTorch to ~1e-8.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ONNX_DIR = "onnx"
#: download format → the file under ``onnx/`` (``safetensors``: the Hugging Face folder itself).
FILES = {"onnx": "model.onnx", "onnx-int8": "model-int8.onnx"}
FORMATS = ("safetensors", *FILES)
ATOL = 1e-4
SAMPLE_TEXTS = (
    "a wonderful, moving film with a superb cast",
    "dull, tedious and far too long; I left before the end",
    "not bad at all",
    "the plot makes no sense but the music is lovely",
)


class OnnxExportError(RuntimeError):
    """An export that could not be made or does not reproduce PyTorch's logits; the message says why."""


def onnx_file(folder: Path, fmt: str) -> Path:
    """Where ``fmt`` (``onnx`` / ``onnx-int8``) of the student in ``folder`` lives."""
    return Path(folder) / ONNX_DIR / FILES[fmt]


def format_bytes(folder: Path) -> dict[str, int]:
    """Size on disk of each format present: the safetensors weights, the fp32 and int8 ONNX files."""
    folder = Path(folder)
    sizes = {"safetensors": sum(f.stat().st_size for f in folder.glob("*.safetensors"))}
    for fmt in FILES:
        if (path := onnx_file(folder, fmt)).is_file():
            sizes[fmt] = path.stat().st_size
    return sizes


def input_names(model: torch.nn.Module) -> list[str]:
    """The inputs the model's forward accepts, in a fixed order (token types only for families with them)."""
    from distill.families import model_inputs

    dummy = torch.zeros(1, 1, dtype=torch.long)
    batch = {"input_ids": dummy, "attention_mask": dummy, "token_type_ids": dummy}
    return list(model_inputs(model, batch))


class _Logits(torch.nn.Module):
    """Positional inputs (in ``names`` order) → logits: the graph's one output."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, tensors, strict=True))).logits


def _export_fp32(
    model: torch.nn.Module, names: list[str], example: dict[str, torch.Tensor], dest: Path
) -> None:
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    args = tuple(example[n] for n in names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Logits(model, names), args, str(dest), input_names=names, output_names=["logits"],
            dynamo=True, external_data=False, verbose=False, optimize=True,
            dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),),  # one entry: the *tensors tuple
        )  # fmt: skip


def session(path: Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def compare(
    model: torch.nn.Module, tokenizer: Any, folder: Path, texts: Sequence[str],
    pairs: Sequence[str] | None = None, *, max_length: int = 128, batch: int = 16,
) -> dict[str, Any]:  # fmt: skip
    """PyTorch vs each ONNX file on ``texts`` (encoded by the student's tokenizer, padded per batch): the
    largest absolute logit difference and the argmax agreement of each format."""
    names = input_names(model)
    sessions = {fmt: session(onnx_file(folder, fmt)) for fmt in FILES if onnx_file(folder, fmt).is_file()}
    diffs = {fmt: 0.0 for fmt in sessions}
    agree = {fmt: 0 for fmt in sessions}
    model.eval()
    for i in range(0, len(texts), batch):
        chunk = list(texts[i : i + batch])
        pair = list(pairs[i : i + batch]) if pairs is not None else None
        enc = tokenizer(
            chunk, pair, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        feed = {n: enc[n] if n in enc else torch.zeros_like(enc["input_ids"]) for n in names}
        with torch.no_grad():
            ref = model(**feed).logits.float().numpy()
        for fmt, sess in sessions.items():
            out = sess.run(["logits"], {n: t.numpy().astype(np.int64) for n, t in feed.items()})[0]
            diffs[fmt] = max(diffs[fmt], float(np.abs(out - ref).max()))
            agree[fmt] += int((out.argmax(-1) == ref.argmax(-1)).sum())
    n = len(texts)
    return {
        fmt: {"max_abs_diff": diffs[fmt], "argmax_agreement": agree[fmt] / n if n else None}
        for fmt in sessions
    }


def export_onnx(
    folder: Path,
    texts: Sequence[str] = SAMPLE_TEXTS,
    pairs: Sequence[str] | None = None,
    *,
    max_length: int = 128,
    atol: float = ATOL,
) -> dict[str, Any]:
    """Write ``onnx/model.onnx`` and ``onnx/model-int8.onnx`` for the student in ``folder`` and check them
    with onnxruntime on ``texts`` (and ``pairs``): the fp32 logits must be within ``atol`` of PyTorch's, else
    :class:`OnnxExportError` and no ONNX file is left. Returns the sizes on disk of every format, the fp32
    difference and the int8 file's difference and argmax agreement."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from distill.hf import load_classifier, load_tokenizer

    folder = Path(folder)
    model = load_classifier(folder).eval()
    tokenizer = load_tokenizer(folder)
    names = input_names(model)
    example = tokenizer(list(SAMPLE_TEXTS[:2]), padding=True, return_tensors="pt")  # batch 2, length > 2
    example = {n: example[n] if n in example else torch.zeros_like(example["input_ids"]) for n in names}
    out = folder / ONNX_DIR
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-") as tmp:
        fp32, int8 = Path(tmp) / FILES["onnx"], Path(tmp) / FILES["onnx-int8"]
        try:
            _export_fp32(model, names, example, fp32)
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise OnnxExportError(f"could not export {folder.name} to ONNX: {first}") from e
        staged = Path(tmp) / ONNX_DIR
        staged.mkdir()
        for path in (fp32, int8):
            os.replace(path, staged / path.name)
        checks = compare(model, tokenizer, Path(tmp), texts, pairs, max_length=max_length)
        if checks["onnx"]["max_abs_diff"] > atol:
            raise OnnxExportError(
                f"the ONNX export of {folder.name} does not reproduce PyTorch: its logits differ by up to "
                f"{checks['onnx']['max_abs_diff']:.2e} (> {atol:g}) on {len(texts)} texts"
            )
        os.replace(staged, out)
    return {
        "bytes": format_bytes(folder),
        "inputs": names,
        "texts": len(texts),
        "onnx": checks["onnx"],
        "onnx-int8": checks["onnx-int8"],
        "seconds": time.perf_counter() - t0,
        "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}; int8: quantize_dynamic",
    }


def onnx_runner(folder: Path, fmt: str, threads: int = 1) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """A callable ``(input_ids, attention_mask) → logits`` over ``fmt``'s onnxruntime session (token types
    zero where the graph takes them): what :func:`distill.holdout.paired_latency` times beside PyTorch."""
    sess = session(onnx_file(folder, fmt), threads=threads)
    names = [i.name for i in sess.get_inputs()]

    def run(ids: torch.Tensor, mask: torch.Tensor) -> Any:
        arrays = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        feed = {n: arrays.get(n, np.zeros_like(arrays["input_ids"])) for n in names}
        return sess.run(None, feed)

    return run
