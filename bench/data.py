"""Benchmark data: parquet files shaped like the real sources, in their real layouts.

Every document is unique: its own stream of words drawn from a Zipf-weighted vocabulary
(real common English words and phrases first, a long tail of made-up words, some non-ASCII),
in sentences and paragraphs, with a log-normal length (FineWeb-Edu: mean ~4,700 characters,
a heavy tail; PubMed-like: mean ~1,360). Nothing is cut from a small repeated corpus, which
would compress and dictionary-encode unlike real text: the text compresses about as
FineWeb-Edu's does (snappy ~2.0x, zstd-1 ~2.7x; `stats.json` records the figures). ~1.5% of
the rows are null and ~1.5% short (some of exactly 49 and 50 characters, some of them
non-ASCII, so characters and bytes differ). The columns are FineWeb-Edu's (text, id, dump,
url, file_path, language, language_score, token_count, score, int_score); int_score is
about half >= 3 (and ~0.5% null), for the fineweb-edu-high definition. Written with pyarrow's
defaults (snappy, dictionary encoding tried) in row groups of the layout's size: 1,000 rows
as datatrove wrote FineWeb, ~100 as the Hub's automatic parquet conversions often have.

Generation is vectorised (Polars and pyarrow) and deterministic: documents are made in blocks of
1,000 rows, each from its own seed (seed, file, block), so layouts that differ only in row
group size hold the same documents. Files are generated once per spec into
bench/.data/<key>/ and reused.
"""

from __future__ import annotations

import hashlib
import io
import itertools
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
REPO_SUBDIR = "sample/10BT"  # where the fineweb-edu definitions' source glob looks
GENERATOR_VERSION = 2  # bump when the generated data changes, to invalidate bench/.data
BLOCK_ROWS = 1_000  # documents are generated in blocks of this many rows, one seed each
MAX_CHARS = 250_000  # the longest document

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
    "several another without against within local century war city american university children's problem "
    "disease treatment patients blood brain heart food soil climate temperature carbon earth ocean river land "
    "use using help make work way day good years year need find give different place each home family group "
    "question area order point report result class role case fact kind rate method effect value skills free "
    "three four five first second last next public able possible available based known likely likely"
).split()
PHRASES = (
    "of the|in the|to the|on the|for the|and the|that the|is a|it is|can be|such as|as well as|one of the|"
    "there are|there is|in order to|the number of|the use of|a number of|at the same time|in addition|"
    "for example|according to the|it was|has been|have been|will be|the end of|part of the|the first|"
    "the United States|the world|the most|more than|is the|was the|in this|this is|as a|with the|from the|"
    "by the|at the|to be|they are|we are|you can|do not|is not|are not|the same|each other|such as the|"
    "in which|of this|of a|in a|to a|and a|to make|to help|the other|of their|of these|on a|is also|may be"
).split("|")
# Some non-ASCII, as in real English web text: accents, curly quotes, dashes, symbols.
ODD_WORDS = "café naïve résumé façade — “the world” it’s °C €10 über São Zürich 1998 3.5% 19th (see e.g. ½ ±2".split()
# Made-up words are syllables of English-like shapes, so the tail's letters repeat as real words' do.
SYLLABLES = [
    onset + vowel + coda
    for onset in ("", "b", "c", "d", "f", "g", "h", "l", "m", "n", "p", "r", "s", "t", "v", "w", "st", "tr", "pr", "ch")
    for vowel in ("a", "e", "i", "o", "u", "ea", "io")
    for coda in ("", "", "n", "r", "s", "t", "l", "nt", "st")
]
SUFFIXES = ("", "", "", "s", "s", "ed", "ing", "tion", "al", "ly", "ment", "er", "ic", "ity", "ous")
# A token is a word and what follows it: (capitalised?, ending). The last word of a document ends in ".".
ENDINGS = (" ", ", ", ". ", ".\n\n", ".")
VOCABULARY_SIZE = 60_000
ZIPF_EXPONENT = 1.0
COLLOCATIONS = 10_000
COLLOCATION_BASE = 2_000
COLLOCATION_EVERY = 3
TOPIC_WORDS = 10
TOPIC_SHARE = 0.2
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

    @property
    def mean_chars(self) -> int:
        return round(self.median_chars * math.exp(self.sigma**2 / 2))


class _Vocabulary:
    """Every (word, capitalised?, ending) token as a string, and the words' Zipf cumulative
    weights (numpy is not among the project's dependencies: Polars and pyarrow do the vector work)."""

    def __init__(self, seed: int):
        import polars as pl

        rng = random.Random(seed * 7919 + 7)
        words = list(dict.fromkeys(COMMON_WORDS))
        # The common phrases among the commonest words, as real text repeats them.
        for i, phrase in enumerate(PHRASES):
            words.insert(min(len(words), 8 + 3 * i), phrase)
        seen = set(words)
        while len(words) < VOCABULARY_SIZE:
            word = "".join(rng.choices(SYLLABLES, k=rng.choice((1, 2, 2, 2, 3, 3, 3, 4)))) + rng.choice(SUFFIXES)
            if word not in seen:
                seen.add(word)
                words.append(word)
        # Collocations: runs of 2-4 of the common words, spread through the ranks, so that word
        # pairs and triples repeat as they do in real text (a unigram stream compresses worse).
        common = words[:COLLOCATION_BASE]
        base_weights = [1.0 / (rank + 1) for rank in range(len(common))]
        collocations = list(dict.fromkeys(
            " ".join(rng.choices(common, base_weights, k=rng.choice((2, 2, 3, 4)))) for _ in range(COLLOCATIONS)
        ))  # fmt: skip
        for i, phrase in enumerate(collocations):
            words.insert(min(len(words), 20 + i * COLLOCATION_EVERY), phrase)
        weights = [1.0 / (rank + 1) ** ZIPF_EXPONENT for rank in range(len(words))]
        words += ODD_WORDS
        weights += [weights[400]] * len(ODD_WORDS)
        total = sum(weights)
        cumulative = list(itertools.accumulate(w / total for w in weights))
        cumulative[-1] = 1.0
        self.cumulative = pl.Series("cumulative", cumulative, pl.Float64)
        self.tokens = pl.Series(
            "token",
            [
                (word[0].upper() + word[1:] if capital else word) + ending
                for word in words
                for capital in (False, True)
                for ending in ENDINGS
            ],
            pl.String,
        )
        self.variants = 2 * len(ENDINGS)
        self.words = len(words)
        mean_word = sum(w / total * len(word.encode()) for word, w in zip(words, weights, strict=True))
        self.mean_token_bytes = mean_word + 1.25  # the space, some ", " and ". "


def _uniform(rng: random.Random, n: int):
    """n uniform doubles in [0, 1) as a Polars Series, deterministic for the rng's state."""
    import polars as pl
    import pyarrow.compute as pc

    return pl.Series(pc.random(n, initializer=rng.getrandbits(62)))


def _texts(rng: random.Random, vocabulary: _Vocabulary, spec: DataSpec, rows: int):
    """`rows` documents as a pyarrow string array (nulls and short rows among them)."""
    import polars as pl
    import pyarrow as pa

    kinds = [rng.random() for _ in range(rows)]
    null = [k < 0.015 for k in kinds]
    short = [0.015 <= k < 0.03 for k in kinds]
    mu = math.log(spec.median_chars)
    per_word = vocabulary.mean_token_bytes
    words = [
        0 if k < 0.03 else max(round(min(rng.lognormvariate(mu, spec.sigma), MAX_CHARS) / per_word), 8) for k in kinds
    ]
    counts = [w for w in words if w]
    total = sum(counts)
    ids = vocabulary.cumulative.search_sorted(_uniform(rng, total), side="right").clip(0, vocabulary.words - 1)
    # Endings: a sentence ends every ~18 words, a paragraph every ~5 sentences, commas between.
    roll = _uniform(rng, total)
    # Burstiness: a document returns to its own topic words (TOPIC_WORDS of the vocabulary's
    # less common words) for about TOPIC_SHARE of its words, as real documents do.
    topics = pl.Series([rng.randrange(1 << 30) for _ in counts], dtype=pl.Int64).repeat_by(pl.Series(counts)).explode()
    pick = _uniform(rng, total)
    topic_word = 200 + (topics * 7919 + (pick * (TOPIC_WORDS / TOPIC_SHARE)).cast(pl.Int64) * 104_729) % (
        vocabulary.words - 200
    )
    ids = pl.select(pl.when(pick < TOPIC_SHARE).then(topic_word).otherwise(ids.cast(pl.Int64))).to_series()
    frame = pl.DataFrame({"id": ids, "roll": roll})
    last = list(itertools.accumulate(counts))
    ending = (
        pl.when(pl.col("roll") > 1 - 1 / 90).then(3)
        .when(pl.col("roll") > 1 - 1 / 18).then(2)
        .when(pl.col("roll") < 0.045).then(1)
        .otherwise(0)
        .cast(pl.Int64)
    )  # fmt: skip
    frame = frame.with_columns(ending=ending)
    frame = frame.with_columns(frame["ending"].scatter([i - 1 for i in last], 4))
    capital = (pl.col("ending").shift(1, fill_value=2) >= 2).cast(pl.Int64)  # a sentence's first word
    token = pl.col("id") * vocabulary.variants + capital * len(ENDINGS) + pl.col("ending")
    strings = vocabulary.tokens.gather(frame.select(token=token)["token"]).to_arrow()
    offsets = pa.array([0, *last], pa.int32())
    docs = pl.Series(pa.ListArray.from_arrays(offsets, pa.concat_arrays(strings.chunks) if hasattr(strings, "chunks")
                                              else strings)).list.join("").to_arrow()  # fmt: skip
    # Short texts, some at the filter's edge (49 and 50 characters; the accented ones are
    # longer in bytes than in characters).
    base = "The results of this study show that the students learned more when they"
    accented = "Café naïve résumé façade — “the world” über São Zürich, naïve résumés"
    shorts = []
    for _ in range(sum(short)):
        pick = rng.randrange(11)
        shorts.append((accented if pick >= 9 else base)[: (0, 5, 20, 40, 49, 49, 50, 50, 51, 49, 50)[pick]])
    pieces = pa.concat_arrays([docs.cast(pa.string()), pa.array(shorts, pa.string())])
    index, long_at, short_at = [], 0, len(counts)
    for is_null, is_short in zip(null, short, strict=True):
        if is_null:
            index.append(None)
        elif is_short:
            index.append(short_at)
            short_at += 1
        else:
            index.append(long_at)
            long_at += 1
    return pieces.take(pa.array(index, pa.int64()))


def _block(rng: random.Random, vocabulary: _Vocabulary, spec: DataSpec, first_id: int, rows: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = _texts(rng, vocabulary, spec, rows)
    dumps = [rng.choice(DUMPS) for _ in range(rows)]
    # Scores: about half the rows have int_score >= 3 (FineWeb-Edu's classifier, 0 to 5).
    scores = [round(min(max(rng.gauss(2.5, 0.75), 0.0), 5.0), 6) for _ in range(rows)]
    int_scores = [None if rng.random() < 0.005 else math.floor(s + 0.5) for s in scores]
    return pa.table(
        {
            "text": texts,
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
            "token_count": pc.cast(pc.divide(pc.fill_null(pc.binary_length(texts), 0), 4), pa.int64()),
            "score": pa.array(scores, pa.float64()),
            "int_score": pa.array(int_scores, pa.int64()),
        }
    )


def generate_file(path: Path, spec: DataSpec, index: int, vocabulary: _Vocabulary) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, pending = None, []
    step = max(spec.row_group_rows, BLOCK_ROWS)
    for block, first in enumerate(range(0, spec.rows_per_file, BLOCK_ROWS)):
        rows = min(BLOCK_ROWS, spec.rows_per_file - first)
        rng = random.Random(f"{spec.seed}/{index}/{block}")
        pending.append(_block(rng, vocabulary, spec, index * spec.rows_per_file + first, rows))
        if sum(len(t) for t in pending) >= step or first + rows >= spec.rows_per_file:
            table = pa.concat_tables(pending)
            pending = []
            if writer is None:  # pyarrow's defaults, as datatrove writes: snappy, dictionary tried
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=spec.row_group_rows)
    writer.close()


def compression(files: list[Path], rows: int = 86_016) -> dict:
    """Text bytes / compressed bytes of the first `rows` non-null texts written as a shard is
    (1,024-row groups), with snappy and with zstd level 1; and the files' own text chunks."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    texts, have = [], 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000, columns=["text"]):
            column = batch.column(0).drop_null()
            texts.append(column)
            have += len(column)
            if have >= rows:
                break
        if have >= rows:
            break
    table = pa.table({"text": pa.chunked_array(texts).slice(0, rows)})
    raw = pc.sum(pc.binary_length(table["text"])).as_py()
    out = {"rows": len(table), "text_mb": round(raw / 1e6, 1)}
    for name, codec, level in (("snappy", "snappy", None), ("zstd_1", "zstd", 1)):
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression=codec, compression_level=level, row_group_size=1024)
        out[f"{name}_mb"] = round(len(buffer.getvalue()) / 1e6, 1)
        out[f"{name}_ratio"] = round(raw / len(buffer.getvalue()), 2)
    return out


def ensure_data(spec: DataSpec, log: Callable[[str], None]) -> tuple[Path, Path, dict]:
    """The repo folder (served by the stand-in), its parquet folder and the data's statistics.

    Generated once per spec into bench/.data/<key>/ and reused by later runs."""
    import pyarrow.compute as pc
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
    vocabulary = _Vocabulary(spec.seed)
    for index in range(spec.files):
        generate_file(staging / "repo" / REPO_SUBDIR / f"{index:03d}_00000.parquet", spec, index, vocabulary)
    paths = sorted((staging / "repo" / REPO_SUBDIR).glob("*.parquet"))
    generated = time.perf_counter() - started
    stats = dict.fromkeys(("rows", "null_rows", "short_rows", "text_chars", "non_ascii_docs", "distinct_texts"), 0)
    stats |= {"int_score_3_or_more_or_null": 0, "text_chunk_bytes": 0}
    for path in paths:
        parquet = pq.ParquetFile(path)
        table = parquet.read(columns=["text", "int_score"])
        text, score = table["text"], table["int_score"]
        chars = pc.utf8_length(text)
        kept = pc.and_(pc.is_valid(text), pc.greater_equal(chars, 50))
        stats["rows"] += len(table)
        stats["null_rows"] += text.null_count
        stats["short_rows"] += pc.sum(pc.less(chars, 50)).as_py() or 0
        stats["text_chars"] += pc.sum(chars).as_py()
        stats["non_ascii_docs"] += pc.sum(pc.invert(pc.string_is_ascii(text))).as_py() or 0
        stats["distinct_texts"] += pc.count_distinct(text).as_py()
        high = pc.or_(pc.is_null(score), pc.greater_equal(score, 3))
        stats["int_score_3_or_more_or_null"] += pc.sum(pc.and_(kept, high)).as_py() or 0
        meta, column = parquet.metadata, parquet.schema_arrow.get_field_index("text")
        stats["text_chunk_bytes"] += sum(
            meta.row_group(i).column(column).total_compressed_size for i in range(meta.num_row_groups)
        )
    docs = stats["rows"] - stats["null_rows"]
    kept_rows = docs - stats["short_rows"]
    metas = [pq.ParquetFile(path).metadata for path in paths]
    stats |= {
        "files": len(paths),
        "row_groups": sum(m.num_row_groups for m in metas),
        "bytes_on_disk": sum(path.stat().st_size for path in paths),
        "mean_chars": round(stats["text_chars"] / max(docs, 1)),
        "kept_fineweb_edu": round(kept_rows / stats["rows"], 4),
        "kept_fineweb_edu_high": round(stats.pop("int_score_3_or_more_or_null") / stats["rows"], 4),
        "compression": compression(paths),
        "generation_seconds": round(generated, 1),
        "spec": spec.__dict__,
    }
    (staging / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    staging.rename(home)
    log(f"generated in {stats['generation_seconds']:.1f} s (checked in {time.perf_counter() - started:.1f} s)")
    return repo, files, stats
