"""Held-out splits (issue 13): a seeded stratified test split by default, separate validation / test files, a
split column with test rows, a bare CR refused with the user's file name and line, a quoted CR kept."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from distill.data import load_task
from distill.tables import DataError


def _csv(path: Path, n: int, offset: int = 0, labels: tuple[str, ...] = ("neg", "neu", "pos")) -> Path:
    pd.DataFrame(
        [{"text": f"tweet {i + offset}", "label": labels[i % len(labels)]} for i in range(n)]
    ).to_csv(path, index=False)
    return path


def test_default_three_way_split_is_stratified_seeded_and_recorded(tmp_path):
    path = str(_csv(tmp_path / "tweets.csv", 300))
    task = load_task(path, validation_fraction=0.1, test_fraction=0.1, seed=3)
    assert (len(task.train), len(task.validation), len(task.test)) == (240, 30, 30)
    assert sorted(e.label for e in task.test).count(0) == 10  # stratified: 10 of each class
    texts = [{e.text for e in part} for part in (task.train, task.validation, task.test)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert task.meta["split"] == {
        "how": "seeded stratified fractions", "seed": 3, "train": 240, "validation": 30, "test": 30
    }  # fmt: skip
    again = load_task(path, validation_fraction=0.1, test_fraction=0.1, seed=3)
    assert [e.text for e in again.test] == [e.text for e in task.test]
    assert load_task(path, test_fraction=0.1, seed=4).fingerprint() != task.fingerprint()


def test_separate_validation_and_test_files_round_trip(tmp_path):
    train = _csv(tmp_path / "train.csv", 60)
    val = _csv(tmp_path / "val.csv", 12, offset=1000)
    test = _csv(tmp_path / "test.csv", 9, offset=2000)
    task = load_task(str(train), validation_source=str(val), test_source=str(test), test_fraction=0.1)
    assert [e.text for e in task.validation] == [f"tweet {1000 + i}" for i in range(12)]
    assert [e.text for e in task.test] == [f"tweet {2000 + i}" for i in range(9)]
    assert len(task.train) == 60 and task.labels == ["neg", "neu", "pos"]
    assert task.meta["split"]["how"] == "given splits"


def test_split_column_with_validation_and_test_rows(tmp_path):
    records = [
        {"text": f"t{i}", "label": "ab"[i % 2], "split": ("train", "train", "dev", "test")[i % 4]}
        for i in range(40)
    ]
    path = tmp_path / "s.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    task = load_task(str(path), split_column="split")
    assert (len(task.train), len(task.validation), len(task.test)) == (20, 10, 10)
    assert all(int(e.text[1:]) % 4 == 3 for e in task.test)


def test_bare_cr_is_refused_with_the_users_file_and_line(tmp_path):
    path = tmp_path / "upload-4f3a.csv"
    path.write_bytes(b"text,label\ngood,pos\nbad,neg\nfine\rthing,pos\nok,neg\n")
    with pytest.raises(DataError) as err:
        load_task(str(path), shown_as={str(path): "tweets.csv"})
    msg = str(err.value)
    assert msg.startswith("tweets.csv, line 4: a bare carriage return") and str(tmp_path) not in msg


def test_quoted_cr_is_text_and_row_errors_name_file_lines(tmp_path):
    path = tmp_path / "q.csv"
    path.write_bytes(b'text,label\n"good\rmovie",pos\n"two\nlines",neg\nfine,\nok,neg\nyes,pos\n')
    with pytest.raises(DataError, match=r"^tweets.csv: 1 row\(s\) with a missing label .*\(lines 5\)"):
        load_task(str(path), shown_as={str(path): "tweets.csv"})
    path.write_bytes(b'text,label\n"good\rmovie",pos\n"two\nlines",neg\nfine,pos\nok,neg\nyes,pos\n')
    task = load_task(str(path), validation_fraction=0.2)
    assert "good\rmovie" in {e.text for e in task.train + task.validation}
