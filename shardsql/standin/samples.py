"""Small generated parquet files shaped like each built-in dataset's source.

Used by the tests and by `shardsql demo`, so that the whole path can run with no network.
The rows are deterministic for a seed and deliberately awkward: nulls, empty and short
texts, texts of exactly 49 and 50 characters, non-Latin and emoji text (where bytes,
code points and graphemes all differ), and null quality scores.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

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


def _table(shape: str, text_column: str, rows: int, rng: random.Random, offset: int) -> pa.Table:
    texts = [_text(rng) for _ in range(rows)]
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
            scores = [rng.uniform(0, 5) for _ in range(rows)]
            columns["score"] = pa.array(scores, pa.float64())
            columns["int_score"] = pa.array([None if rng.random() < 0.1 else round(s) for s in scores], pa.int64())
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
        columns = {
            "text": texts,
            "meta": [{"redpajama_set_name": rng.choice(["RedPajamaC4", "RedPajamaBook"])} for _ in range(rows)],
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


def write_sample(
    dataset: str, folder: Path, files: int = 3, rows_per_file: int = 3000, row_group_size: int = 500, seed: int = 0
) -> list[Path]:
    """Write `files` parquet files shaped like `dataset`'s source into `folder` (its repo layout).

    Returns the written paths. `folder` plays the role of the repo root, so the files land in
    the same sub-folder and under the same names as on the Hub.
    """
    repo, _revision, sub, pattern, text_column, shape = LAYOUTS[dataset]
    rng = random.Random(f"{dataset}-{seed}")
    target = folder / sub
    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(files):
        path = target / pattern.format(i=i)
        table = _table(shape, text_column, rows_per_file, rng, offset=i * rows_per_file)
        pq.write_table(table, path, row_group_size=row_group_size)
        paths.append(path)
    return paths
