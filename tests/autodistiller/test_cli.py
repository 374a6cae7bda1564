"""The command line: listing components, and clear errors (exit 2) for bad input."""

from __future__ import annotations

import json

import pytest

from autodistiller.cli import main


def test_components_lists_every_family(capsys):
    assert main(["components", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert len(listing["output losses"]) >= 8 and len(listing["intermediate objectives"]) >= 10
    assert {"kl", "pld", "sinkhorn", "dual_head"} <= set(listing["output losses"])
    assert "mi_alpha" in listing["intermediate objectives"]
    assert {"eda_swap", "embed_neighbour"} <= set(listing["augmentations"])
    assert set(listing["layer mappings"]) == {"skip", "last", "uniform", "emd"}
    assert "needs a masked LM" in listing["augmentations"]["contextual"]
    assert set(listing["training schedules (Training.stages)"]) == {"single", "progressive"}
    assert set(listing["teacher mixes (Pipeline.teachers)"]) == {"single", "fixed", "confidence"}
    assert main(["components"]) == 0
    assert "mi_alpha" in capsys.readouterr().out


def test_bad_dataset_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "one_class.csv"
    bad.write_text("text,label\ngood film,pos\ngreat film,pos\n")
    code = main(["distill", "--dataset", str(bad), "--teacher", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "class" in err


def test_bad_pipeline_is_a_clear_cli_error(tmp_path, capsys):
    pipe = tmp_path / "p.json"
    pipe.write_text(json.dumps({"loss": {"name": "nope"}}))
    code = main(
        [
            "distill",
            "--dataset",
            "rotten_tomatoes",
            "--teacher",
            str(tmp_path),
            "--pipeline",
            str(pipe),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and "No output loss `nope`" in capsys.readouterr().err


def test_plugin_files_add_components(tmp_path):
    import os
    import subprocess
    import sys

    plugin = tmp_path / "my_loss.py"
    plugin.write_text(
        "from distill.losses import LOSSES, LogitLoss\n\n"
        "@LOSSES.register('my_loss', 'a custom loss from a plug-in file')\n"
        "class MyLoss(LogitLoss):\n"
        "    def forward(self, x):\n"
        "        return (x.student_logits - x.teacher_logits).abs().mean()\n"
    )
    env = {**os.environ, "AUTODISTILLER_PLUGINS": str(plugin)}
    out = subprocess.run(
        [sys.executable, "-m", "autodistiller.cli", "components", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["output losses"]["my_loss"] == "a custom loss from a plug-in file"


def test_download_formats_are_the_services(capsys):
    """``download --format`` offers the API's formats (spelled out: the CLI starts without torch)."""
    from autodistiller.cli import DOWNLOAD_FORMATS
    from distill.onnx_export import FORMATS

    assert DOWNLOAD_FORMATS == list(FORMATS) == ["safetensors", "onnx", "onnx-int8"]
    with pytest.raises(SystemExit) as e:
        main(["download", "J", "--out", "x", "--format", "bogus"])
    assert e.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err


def test_a_bad_transfer_file_is_a_clear_cli_error(tmp_path, capsys):
    pool = tmp_path / "pool.csv"
    pool.write_text("text,source\nfine,a\n  ,b\n")
    argv = ["distill", "--dataset", "rotten_tomatoes", "--max-train", "50", "--max-val", "20",
            "--teacher", str(tmp_path), "--out", str(tmp_path / "o"), "--transfer", str(pool)]  # fmt: skip
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "pool.csv" in err and "lines 3" in err


def test_submit_takes_a_transfer_file():
    from autodistiller.cli import build_parser
    from autodistiller.local import transfer_ref

    args = build_parser().parse_args(
        ["submit", "--dataset", "d.csv", "--text-column", "review", "--transfer", "pool.csv"]
    )
    ref = transfer_ref(args)
    assert ref is not None and ref.source == "pool.csv" and ref.text_column == "review"
    assert transfer_ref(build_parser().parse_args(["submit", "--dataset", "d.csv"])) is None
