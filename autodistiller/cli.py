"""The ``autodistiller`` command line."""

from __future__ import annotations

import argparse
import sys
import time

from pydantic import ValidationError

from autodistiller import local, recommender_cli, remote
from autodistiller.local import add_data_args
from store.settings import Settings, SettingsError
from store.states import TRIAL_STATUSES

#: distill.onnx_export.FORMATS, spelled out: importing it would load torch into every command line start
DOWNLOAD_FORMATS = ["safetensors", "onnx", "onnx-int8"]


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
    p.add_argument(
        "--gpus-per-trial", type=float, default=None,
        help="GPU share of each trial where the cluster has GPUs: 0.25 runs four small students a GPU; "
        "default 1",
    )  # fmt: skip
    p.add_argument("--space", choices=["default", "small"], default="default")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument(
        "--objectives", default="accuracy", help="accuracy[,params|,latency_ms] (NSGA-II if several)"
    )
    p.add_argument(
        "--max-params", type=int, default=None, help="every student has at most this many parameters"
    )
    p.add_argument("--max-latency-ms", type=float, default=None, help="every student's CPU latency bound")
    p.add_argument(
        "--target-ratio", type=float, default=None,
        help="the answer: the smallest student with accuracy >= ratio x the teacher's (else the closest)",
    )  # fmt: skip
    p.add_argument("--target-by", choices=["params", "latency_ms"], default="params")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodistiller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    _add_job_verbs(sub)
    _add_service_verbs(sub)
    _add_api_verbs(sub)
    p = sub.add_parser("migrate", help="create or upgrade the database schema (the service does it on start)")
    p.set_defaults(fn=local.cmd_migrate)

    p = sub.add_parser("components", help="list every registered loss, objective and augmentation")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=local.cmd_components)
    recommender_cli.add_verbs(sub)
    return parser


def _add_job_verbs(sub: argparse._SubParsersAction) -> None:
    """demo, distill, teacher, search: work in this process."""
    p = sub.add_parser("demo", help="fine-tune a Rotten Tomatoes teacher (cached), search, distil a student")
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--n-val", type=int, default=500)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--trials", type=int, default=6)
    p.set_defaults(fn=local.cmd_demo)

    p = sub.add_parser("distill", help="distil a student with one pipeline and export it")
    add_data_args(p)
    p.add_argument("--teacher", required=True, help="fine-tuned HF model folder (safetensors) or Hub id")
    p.add_argument("--pipeline", help="pipeline JSON file (default: the default Pipeline)")
    p.add_argument("--out", required=True, help="folder for the exported student")
    local.add_transfer_arg(p)
    p.set_defaults(fn=local.cmd_distill)

    p = sub.add_parser("teacher", help="fine-tune a base encoder into a teacher (cached)")
    add_data_args(p)
    p.add_argument("--base", help="base encoder folder or Hub id (default: the shipped MiniLM)")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--max-length", type=int, default=64)
    p.set_defaults(fn=local.cmd_teacher)

    p = sub.add_parser(
        "search", help="search the KD pipeline space for a dataset and teacher (in-process worker)"
    )
    add_data_args(p)
    who = p.add_mutually_exclusive_group()
    who.add_argument("--teacher", help="fine-tuned HF model folder (safetensors) or Hub id")
    who.add_argument(
        "--base", help="base encoder to fine-tune into the teacher (default: the shipped MiniLM)"
    )
    _add_budget_args(p)
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    local.add_transfer_arg(p)
    p.set_defaults(fn=local.cmd_search)


def _add_service_verbs(sub: argparse._SubParsersAction) -> None:
    """worker, serve, keys: the service's processes and its administration."""
    p = sub.add_parser("worker", help="claim queued jobs from the database and run them")
    p.add_argument("--ray-address", default=None, help="join a Ray cluster (default: start Ray in-process)")
    p.add_argument("--once", action="store_true", help="exit when no job is left")
    p.add_argument("--worker-id", default=None, help="its id in the database (default: host + random)")
    p.add_argument(
        "--stale-after", type=float, default=30.0, help="seconds without heartbeat before a job is taken over"
    )
    p.set_defaults(fn=local.cmd_worker)

    p = sub.add_parser("serve", help="run the HTTP API with in-process workers (SQLite by default)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes to start (0: an API-only node)")
    p.add_argument("--ray-address", default=None, help="workers join this Ray cluster (default: local Ray)")
    p.add_argument(
        "--stale-after", type=float, default=30.0, help="seconds without heartbeat before a job is taken over"
    )
    p.set_defaults(fn=local.cmd_serve)

    p = sub.add_parser("keys", help="admin: create, list or revoke API keys (directly in the database)")
    keys = p.add_subparsers(dest="action", required=True)
    k = keys.add_parser("create", help="a new key (printed once)")
    k.add_argument("--name", required=True, help="who the key is for")
    k.add_argument("--quiet", action="store_true", help="print only the key")
    keys.add_parser("list", help="every key (prefix, name, state)")
    k = keys.add_parser("revoke", help="revoke a key by id or prefix")
    k.add_argument("id")
    p.set_defaults(fn=local.cmd_keys)


def _add_api_verbs(sub: argparse._SubParsersAction) -> None:
    """submit, status, leaderboard, download: through the HTTP API."""
    p = sub.add_parser("submit", help="upload/register a dataset and teacher, and submit a job to the API")
    add_data_args(p)
    p.add_argument("--teacher", help="local model folder (uploaded), Hub id, or `minilm` (the default)")
    p.add_argument(
        "--extra-teacher",
        action="append",
        help="another fine-tuned teacher (folder or Hub id) whose soft targets the search may mix in; repeat",
    )
    p.add_argument("--mlm", help="a masked LM (folder or Hub id) for contextual augmentation")
    local.add_transfer_arg(p)
    _add_budget_args(p)
    p.add_argument("--idempotency-key", default=None, help="repeat the submission safely")
    p.add_argument("--wait", action="store_true", help="follow the job until it ends")
    _add_api_args(p)
    p.set_defaults(fn=remote.cmd_submit)

    p = sub.add_parser("status", help="a job's state, progress and recommendation (no job: my jobs)")
    p.add_argument("job", nargs="?")
    p.add_argument("--watch", action="store_true", help="follow the job until it ends")
    p.add_argument("--limit", type=int, default=20)
    _add_api_args(p)
    p.set_defaults(fn=remote.cmd_status)

    p = sub.add_parser("leaderboard", help="a job's trials, best first")
    p.add_argument("job")
    p.add_argument("--sort", default="-accuracy", help="a column, `-` first for descending")
    p.add_argument("--status", action="append", choices=[str(s) for s in TRIAL_STATUSES])
    p.add_argument("--limit", type=int, default=20)
    _add_api_args(p)
    p.set_defaults(fn=remote.cmd_leaderboard)

    p = sub.add_parser("download", help="download a job's student as a Hugging Face model folder")
    p.add_argument("job")
    p.add_argument("--trial", type=int, default=None, help="a kept trial's student (Pareto front, refs)")
    p.add_argument("--out", required=True, help="a new folder for the student")
    p.add_argument(
        "--format", default="safetensors", choices=DOWNLOAD_FORMATS,
        help="safetensors: the Hugging Face folder; onnx / onnx-int8: model.onnx / model-int8.onnx (dynamic "
        "int8) with config.json and the tokenizer",
    )  # fmt: skip
    _add_api_args(p)
    p.set_defaults(fn=remote.cmd_download)


def main(argv: list[str] | None = None) -> int:
    from distill.hf import ModelError
    from distill.registry import UnknownComponentError
    from distill.tables import DataError
    from search.meta_rows import RowsError
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
        SettingsError,
        RowsError,
    )
    try:
        settings = Settings.from_env()
        code = args.fn(args, settings)
    except (*errors, ApiError) as e:
        print(f"autodistiller: error: {e}", file=sys.stderr)
        return 2
    if args.command not in ("components", "keys", "status", "leaderboard", "migrate", "recommender"):
        print(f"done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
