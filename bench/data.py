"""Benchmark data: parquet files shaped like the real sources, in their real layouts.

Documents are English-like prose cut from a generated pool of Zipf-distributed words in
sentences and paragraphs, with log-normal lengths (FineWeb-Edu's mean is about 3,500
characters, PubMed abstracts' about 1,200), some non-ASCII, and ~1.5% null and ~1.5%
short rows (some right at the 50-character filter edge). The columns are FineWeb-Edu's
(text, id, dump, url, file_path, language, language_score, token_count, score,
int_score), written with pyarrow (snappy) in row groups of the layout's size: 1,000 rows
as datatrove wrote FineWeb, ~100 as the Hub's automatic parquet conversions often have.

Files are generated once per spec into bench/.data/<key>/ and reused.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
DATA_DIR = BENCH_DIR / ".data"
REPO = "HuggingFaceFW/fineweb-edu"
REPO_SUBDIR = "sample/10BT"  # where the fineweb-edu definition's source glob looks
GENERATOR_VERSION = 1  # bump when the generated data changes, to invalidate bench/.data

COMMON_WORDS = (
    "the of and to a in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there been one all we their has would when if so no will more can who its into some "
    "them other than then only time these may first also new two like people could any our way what about out "
    "over many my even most such used after made where through before must between each water called years both "
    "students learning school children history energy system different important example because however during "
    "often number part form world information research health study process data development language social "
    "science cells body plants found known include including small large high level well still while under "
    "around those life early might long very own said much great state common should human education teachers "
    "community environment scientists species natural change power country government understanding particular "
    "several another without against within local century war city american university university children's "
    "disease treatment patients blood brain heart food soil climate temperature carbon earth ocean river land"
).split()
# Some non-ASCII, as in real English web text: accents, curly quotes, dashes, symbols.
ODD_WORDS = "café naïve résumé façade — “the world” it’s °C €10 über São Zürich 1998 3.5% 19th (see e.g.".split()
SYLLABLES = "ka ri to me na lo su pe ti ra mo ne di co la ve si tu ba ge ro ma ni pa de fo li sa ta".split()
SUFFIXES = ("", "", "s", "ed", "ing", "tion", "al", "ly", "ment", "er")
DUMPS = [f"CC-MAIN-{y}-{w:02d}" for y in range(2013, 2025) for w in (10, 22, 40)]


@dataclass(frozen=True)
class DataSpec:
    files: int
    rows_per_file: int
    row_group_rows: int
    median_chars: int
    sigma: float
    seed: int

    def key(self) -> str:
        text = json.dumps({**self.__dict__, "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _vocabulary(rng: random.Random) -> tuple[list[str], list[float]]:
    """~30k words, Zipf-weighted: real common words first, a long tail of made-up ones."""
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words)
    while len(words) < 30_000:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((2, 2, 3, 3, 3, 4)))) + rng.choice(SUFFIXES)
        if word not in seen:
            seen.add(word)
            words.append(word)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    words += ODD_WORDS
    weights += [weights[300]] * len(ODD_WORDS)
    cumulative, total = [], 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    return words, cumulative


def _prose_pool(rng: random.Random, chars: int) -> str:
    """Sentences and paragraphs of Zipf-distributed words; documents are cut from this."""
    words, cumulative = _vocabulary(rng)
    parts: list[str] = []
    size = 0
    while size < chars:
        batch = rng.choices(words, cum_weights=cumulative, k=500_000)
        sentences, i = [], 0
        while i < len(batch):
            n = rng.randint(6, 32)
            sentence = batch[i : i + n]
            i += n
            sentence[0] = sentence[0].capitalize()
            if len(sentence) > 12:
                sentence[rng.randrange(3, len(sentence) - 3)] += ","
            sentences.append(" ".join(sentence) + ("." if rng.random() < 0.93 else rng.choice("?!:")))
        paragraphs, j = [], 0
        while j < len(sentences):
            k = rng.randint(2, 8)
            paragraphs.append(" ".join(sentences[j : j + k]))
            j += k
        chunk = "\n\n".join(paragraphs)
        parts.append(chunk)
        size += len(chunk)
    return "\n\n".join(parts)


def _document(rng: random.Random, pool: str, spec: DataSpec) -> str | None:
    """A document of log-normal length (mean ~3.7k chars), or a null/short row (~3%)."""
    roll = rng.random()
    if roll < 0.015:
        return None
    if roll < 0.03:  # short texts, some right at the filter's edge (49 and 50 characters)
        n = rng.choice((0, 5, 20, 40, 49, 49, 50, 50, 51))
        start = rng.randrange(len(pool) - 100)
        return pool[start : start + n]
    target = min(max(int(rng.lognormvariate(math.log(spec.median_chars), spec.sigma)), 60), 150_000)
    pieces, have = [], 0
    while have < target:
        want = min(target - have, rng.randint(400, 4000))
        start = pool.find(". ", rng.randrange(len(pool) - want - 10_000)) + 2  # a sentence start
        piece = pool[start : start + want]
        cut = piece.rfind(" ")
        piece = piece[:cut] if cut > 40 else piece
        pieces.append(piece)
        have += len(piece) + 2
    return "\n\n".join(pieces)


def _row_group(rng: random.Random, pool: str, spec: DataSpec, first_id: int, rows: int, stats: dict):
    import pyarrow as pa

    texts = [_document(rng, pool, spec) for _ in range(rows)]
    stats["rows"] += rows
    stats["null_rows"] += sum(t is None for t in texts)
    stats["short_rows"] += sum(t is not None and len(t) < 50 for t in texts)
    stats["text_chars"] += sum(len(t) for t in texts if t)
    stats["non_ascii_docs"] += sum(t is not None and not t.isascii() for t in texts)
    dumps = [rng.choice(DUMPS) for _ in range(rows)]
    scores = [round(rng.uniform(2.5, 5.0), 6) for _ in range(rows)]
    return pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "id": [f"<urn:uuid:{rng.getrandbits(128):032x}>" for _ in range(rows)],
            "dump": dumps,
            "url": [f"https://www.site{rng.randrange(50_000)}.org/articles/{first_id + i}" for i in range(rows)],
            "file_path": [
                f"s3://commoncrawl/crawl-data/{d}/segments/{rng.randrange(10**12)}.{rng.randrange(100)}/warc/"
                f"{d}-{rng.randrange(100_000):05d}.warc.gz"
                for d in dumps
            ],
            "language": ["en"] * rows,
            "language_score": pa.array([rng.uniform(0.65, 1.0) for _ in range(rows)], pa.float64()),
            "token_count": pa.array([len(t or "") * 10 // 45 for t in texts], pa.int64()),
            "score": pa.array(scores, pa.float64()),
            "int_score": pa.array([round(s) for s in scores], pa.int64()),
        }
    )


def ensure_data(spec: DataSpec, log: Callable[[str], None]) -> tuple[Path, Path, dict]:
    """The repo folder (served by the stand-in), its parquet folder and the data's statistics.

    Generated once per spec into bench/.data/<key>/ and reused by later runs."""
    import pyarrow.parquet as pq

    home = DATA_DIR / spec.key()
    repo, files = home / "repo", home / "repo" / REPO_SUBDIR
    done = home / "stats.json"
    if done.exists():
        return repo, files, json.loads(done.read_text())
    log(f"generating {spec.files} files x {spec.rows_per_file:,} rows into {home} (cached for later runs)...")
    started = time.perf_counter()
    shutil.rmtree(home, ignore_errors=True)
    staging = DATA_DIR / f".{spec.key()}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "repo" / REPO_SUBDIR).mkdir(parents=True)
    rng = random.Random(spec.seed)
    pool = _prose_pool(rng, 48_000_000)
    stats = dict.fromkeys(("rows", "null_rows", "short_rows", "text_chars", "non_ascii_docs"), 0)
    for index in range(spec.files):
        path = staging / "repo" / REPO_SUBDIR / f"{index:03d}_00000.parquet"
        writer = None
        for first in range(0, spec.rows_per_file, spec.row_group_rows):
            rows = min(spec.row_group_rows, spec.rows_per_file - first)
            table = _row_group(rng, pool, spec, index * spec.rows_per_file + first, rows, stats)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=spec.row_group_rows)
        writer.close()
    paths = sorted((staging / "repo" / REPO_SUBDIR).glob("*.parquet"))
    metas = [pq.ParquetFile(path).metadata for path in paths]
    docs = stats["rows"] - stats["null_rows"]
    stats |= {
        "files": len(paths),
        "row_groups": sum(m.num_row_groups for m in metas),
        "bytes_on_disk": sum(path.stat().st_size for path in paths),
        "mean_chars": round(stats["text_chars"] / max(docs, 1)),
        "generation_seconds": round(time.perf_counter() - started, 1),
        "spec": spec.__dict__,
    }
    (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    staging.rename(home)
    log(f"generated in {stats['generation_seconds']:.1f} s")
    return repo, files, stats
