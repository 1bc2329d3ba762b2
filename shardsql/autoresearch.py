"""What autoresearch reads: the format every conversion writes and `verify` checks.

autoresearch's prepare.py and train.py read `~/.cache/autoresearch/data/shard_NNNNN.parquet`:
one `text` column (never NULL, valid UTF-8), 86,016 rows a shard in 1,024-row row groups,
and `shard_06542.parquet` as the validation shard, of which one evaluation reads
EVAL_TOKENS tokens. These numbers are autoresearch's, not ours: they live here, once.
"""

from __future__ import annotations

from pathlib import Path

TEXT_COLUMN = "text"
ROWS_PER_SHARD = 86_016
ROW_GROUP_SIZE = 1_024
VAL_SHARD_INDEX = 6542  # prepare.py's VAL_SHARD
# Training shards are shard_00000 .. shard_06541: one more would take the validation shard's name.
MAX_TRAIN_SHARDS = VAL_SHARD_INDEX
DEFAULT_CACHE_DIR = Path("~/.cache/autoresearch")
EVAL_TOKENS = 40 * 524_288  # prepare.py's EVAL_TOKENS: what evaluate_bpb reads from the validation shard
# The validation shard's size in tokens is estimated without a tokenizer (prepare.py trains
# it later, on this very data): UTF-8 bytes of text / BYTES_PER_TOKEN. About 4 bytes a token
# is typical of English under a BPE vocabulary like autoresearch's; code, non-Latin scripts
# or a small vocabulary give fewer, so the estimate is rough, which is enough for a warning.
BYTES_PER_TOKEN = 4
# Tokens the validation shard should hold so that autoresearch's evaluation (EVAL_TOKENS, read
# as BOS-aligned packed rows that waste part of each document) never wraps around: about 32M.
VAL_TOKENS_WANTED = 32 << 20
NEXT_STEP = "uv run prepare.py --num-shards {n}"  # what a user runs in autoresearch after converting


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


VAL_SHARD_NAME = shard_name(VAL_SHARD_INDEX)


def val_advice(tokens: int, rows: int) -> str | None:
    """A warning when a validation shard of `rows` rows and `tokens` estimated tokens is below
    VAL_TOKENS_WANTED, with the --val-rows that would reach it at its mean length; None if not."""
    if tokens >= VAL_TOKENS_WANTED:
        return None
    per_row = tokens / rows if rows else 0
    reach = f"--val-rows {-(-VAL_TOKENS_WANTED // max(1, int(per_row))):,}" if per_row >= 1 else "a larger --val-rows"
    return (
        f"the validation shard holds about {tokens:,} tokens (UTF-8 bytes / {BYTES_PER_TOKEN}), fewer than the "
        f"{VAL_TOKENS_WANTED:,} autoresearch's evaluation needs before it reads the same text again; "
        f"{reach} would reach it at the sample's mean of {per_row:,.0f} tokens a row"
    )
