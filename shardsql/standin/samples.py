"""Generated parquet files shaped like each built-in dataset's source.

Used by the tests and by `shardsql demo`, so that the whole path can run with no network.
The rows are deterministic for a seed and deliberately awkward: nulls, empty and short
texts, texts of exactly 49 and 50 characters, non-Latin and emoji text (where bytes,
code points and graphemes all differ), and null quality scores.

Two kinds of text (`write_sample`'s `realistic`):
- short (the default, for the tests): word salad of at most ~700 characters, cheap to convert;
- realistic (the demo and `demo --serve`): each set's own length distribution with its long
  tail (FineWeb-Edu: median ~2.9k characters, mean ~4.6k, some over 50k), prose in
  paragraphs, Python files shaped like code, PubMed abstracts in sections, and FineWeb-Edu's
  scores spread over 1 to 5 (`texts.py`).
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .texts import SHAPES, document, length

# dataset name -> (Hub repo, revision, folder in the repo, file name pattern, text column, shape)
LAYOUTS: dict[str, tuple[str, str, str, str, str, str]] = {
    "fineweb-edu": ("HuggingFaceFW/fineweb-edu", "main", "sample/10BT", "{i:03d}_00000.parquet", "text", "edu"),
    "fineweb-edu-high": ("HuggingFaceFW/fineweb-edu", "main", "sample/10BT", "{i:03d}_00000.parquet", "text", "edu"),
    "fineweb": ("HuggingFaceFW/fineweb", "main", "sample/10BT", "{i:03d}_00000.parquet", "text", "web"),
    "cosmopedia-v2": (
        "HuggingFaceTB/smollm-corpus",
        "main",
        "cosmopedia-v2",
        "train-{i:05d}-of-00104.parquet",
        "text",
        "cosmo",
    ),
    "slimpajama": (
        "DKYoon/SlimPajama-6B",
        "refs/convert/parquet",
        "default/train",
        "{i:04d}.parquet",
        "text",
        "pajama",
    ),
    "slimpajama-627b": (
        "gmongaras/SlimPajama-627B_Reupload",
        "refs/convert/parquet",
        "default/train",
        "{i:04d}.parquet",
        "text",
        "pajama",
    ),
    "github-code-python": (
        "codeparrot/github-code-clean",
        "refs/convert/parquet",
        "Python-all/partial-train",
        "{i:04d}.parquet",
        "code",
        "code",
    ),
    "pubmed-abstract": (
        "uiyunkim-hub/pubmed-abstract",
        "refs/convert/parquet",
        "default/train",
        "{i:04d}.parquet",
        "abstract",
        "pubmed",
    ),
}

WORDS = (
    "the of and to in is for that learning energy cell water history students data model light "
    "数据 学习 能量 История данные обучение المعرفة والتعلم 🚀 👍🏽 é ñ ü"
).split()


def _text(rng: random.Random) -> str | None:
    """A document, or one of the edge cases the filters must handle like the seed does."""
    roll = rng.random()
    if roll < 0.04:
        return None
    if roll < 0.07:
        return ""
    if roll < 0.12:
        return "x" * rng.choice([1, 10, 49])
    if roll < 0.15:
        return rng.choice(["é" * 49, "日" * 50, "👍🏽" * 25, "a" * 50, "🚀" * 49])
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 120)))


Scores = tuple[list[float], list[int | None]]  # FineWeb-Edu's score and int_score columns


def _table(
    shape: str,
    rows: int,
    rng: random.Random,
    offset: int,
    texts: list[str | None],
    scores: Scores | None = None,
    sets: list[str] | None = None,
) -> pa.Table:
    """A file's table of `shape`'s columns holding `texts`; `scores` (edu) and `sets` (pajama's
    meta) if given, else drawn as the short sample draws them."""
    ids = [f"<urn:uuid:{offset + i:08d}>" for i in range(rows)]
    columns: dict[str, object] = {}
    if shape in ("edu", "web"):
        columns = {
            "text": texts,
            "id": ids,
            "dump": ["CC-MAIN-2024-10"] * rows,
            "url": [f"https://example.org/{offset + i}" for i in range(rows)],
            "language": ["en"] * rows,
            "language_score": pa.array([rng.random() for _ in range(rows)], pa.float64()),
            "token_count": pa.array([len(t or "") // 4 for t in texts], pa.int64()),
        }
        if shape == "edu":
            if scores is None:
                drawn = [rng.uniform(0, 5) for _ in range(rows)]
                scores = drawn, [None if rng.random() < 0.1 else round(s) for s in drawn]
            columns["score"] = pa.array(scores[0], pa.float64())
            columns["int_score"] = pa.array(scores[1], pa.int64())
    elif shape == "cosmo":
        columns = {
            "prompt": [f"Write a textbook chapter {offset + i}" for i in range(rows)],
            "text": texts,
            "token_length": pa.array([len(t or "") // 4 for t in texts], pa.int64()),
            "audience": ["students"] * rows,
            "format": ["textbook"] * rows,
            "seed_data": ["web_samples_v2"] * rows,
        }
    elif shape == "pajama":
        if sets is None:
            sets = [rng.choice(["RedPajamaC4", "RedPajamaBook"]) for _ in range(rows)]
        columns = {
            "text": texts,
            "meta": [{"redpajama_set_name": name} for name in sets],
            "__index_level_0__": pa.array(range(offset, offset + rows), pa.int64()),
        }
    elif shape == "code":
        columns = {
            "code": texts,
            "repo_name": [f"user/repo{i % 7}" for i in range(rows)],
            "path": [f"src/module_{offset + i}.py" for i in range(rows)],
            "language": ["Python"] * rows,
            "license": ["mit"] * rows,
            "size": pa.array([len((t or "").encode()) for t in texts], pa.int64()),
        }
    elif shape == "pubmed":
        columns = {"pmid": pa.array(range(offset, offset + rows), pa.int64()), "abstract": texts}
    return pa.table(columns)


def _real_text(shape: str, rng: random.Random) -> tuple[str | None, float]:
    """A document with the real set's length and form, or (3%) one of `_text`'s edge cases; and
    its length's standard normal (0 for an edge case): longer documents score higher."""
    roll = rng.random()
    if roll < 0.01:
        return None, 0.0
    if roll < 0.015:
        return "", 0.0
    if roll < 0.025:
        return "x" * rng.choice([1, 10, 49]), 0.0
    if roll < 0.03:
        return rng.choice(["é" * 49, "日" * 50, "👍🏽" * 25, "a" * 50, "🚀" * 49]), 0.0
    chars, z = length(SHAPES[shape], rng)
    return document(SHAPES[shape], chars, rng), z


# The realistic sample's share of each rounded FineWeb-Edu score (the classifier's 0 to 5 as it
# scores web pages; the Hub's fineweb-edu keeps 3 and up, the sample spreads 1 to 5 so that a
# filter on the score has something to remove)
SCORE_SHARES = {1: 0.12, 2: 0.28, 3: 0.32, 4: 0.2, 5: 0.08}
# SlimPajama's sources, by share of documents; its books are far longer than the rest
PAJAMA_SETS = {
    "RedPajamaCommonCrawl": 0.52,
    "RedPajamaC4": 0.27,
    "RedPajamaGithub": 0.05,
    "RedPajamaArXiv": 0.05,
    "RedPajamaWikipedia": 0.05,
    "RedPajamaStackExchange": 0.04,
    "RedPajamaBook": 0.02,
}
BOOK_CHARS = (30_000, 110_000)


def _real_table(shape: str, rows: int, rng: random.Random, offset: int) -> pa.Table:
    """`_table` with realistic texts, scores and sets (see the module's docstring)."""
    drawn = [_real_text(shape, rng) for _ in range(rows)]
    texts = [text for text, _ in drawn]
    scores: Scores | None = None
    sets: list[str] | None = None
    if shape == "edu":  # a score of 1 to 5, higher for longer documents, as on the Hub
        levels = rng.choices(list(SCORE_SHARES), weights=list(SCORE_SHARES.values()), k=rows)
        raw = [level + rng.uniform(-0.5, 0.5) + 0.25 * z for level, (_, z) in zip(levels, drawn, strict=True)]
        score = [round(min(5.3, max(0.7, s)), 4) for s in raw]
        scores = score, [None if rng.random() < 0.02 else min(5, max(1, round(s))) for s in score]
    if shape == "pajama":
        sets = rng.choices(list(PAJAMA_SETS), weights=list(PAJAMA_SETS.values()), k=rows)
        for i, name in enumerate(sets):
            if name == "RedPajamaBook" and texts[i]:
                texts[i] = document(SHAPES[shape], rng.randint(*BOOK_CHARS), rng)
    return _table(shape, rows, rng, offset, texts, scores, sets)


def write_sample(
    dataset: str,
    folder: Path,
    files: int = 3,
    rows_per_file: int = 3000,
    row_group_size: int = 500,
    seed: int = 0,
    *,
    realistic: bool = False,
) -> list[Path]:
    """Write `files` parquet files shaped like `dataset`'s source into `folder` (its repo layout).

    Returns the written paths. `folder` plays the role of the repo root, so the files land in
    the same sub-folder and under the same names as on the Hub. `realistic`: the real set's
    lengths, form and scores (the demo's); else short texts (the tests'): see the module's docstring.
    """
    _repo, _revision, sub, pattern, text_column, shape = LAYOUTS[dataset]
    rng = random.Random(f"{dataset}-{seed}")
    target = folder / sub
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = target / pattern.format(i=i)
        if realistic:  # long texts: a dictionary of them is tried for nothing
            table = _real_table(shape, rows_per_file, rng, offset=i * rows_per_file)
            others = [c for c in table.schema.names if c != text_column]
            pq.write_table(table, path, row_group_size=row_group_size, use_dictionary=others)
        else:
            texts = [_text(rng) for _ in range(rows_per_file)]
            table = _table(shape, rows_per_file, rng, i * rows_per_file, texts)
            pq.write_table(table, path, row_group_size=row_group_size)
        paths.append(path)
    return paths
