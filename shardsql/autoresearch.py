"""What autoresearch reads: the format every conversion writes and `verify` checks.

autoresearch's prepare.py and train.py read `~/.cache/autoresearch/data/shard_NNNNN.parquet`:
one `text` column (never NULL, valid UTF-8), 86,016 rows a shard in 1,024-row row groups,
and `shard_06542.parquet` as the validation shard, of which one evaluation reads
EVAL_TOKENS tokens. These numbers are autoresearch's, not ours: they live here, once.
nanochat reads the same format from its own folder; where each consumer keeps its data,
and what differs between them, is in consumers.py.
"""

from __future__ import annotations

TEXT_COLUMN = "text"
ROWS_PER_SHARD = 86_016
ROW_GROUP_SIZE = 1_024
VAL_SHARD_INDEX = 6542  # prepare.py's VAL_SHARD
# Training shards are shard_00000 .. shard_06541: one more would take the validation shard's name.
MAX_TRAIN_SHARDS = VAL_SHARD_INDEX
EVAL_TOKENS = 40 * 524_288  # prepare.py's EVAL_TOKENS: what evaluate_bpb reads from the validation shard
# The validation shard's size in tokens is estimated without a tokenizer (prepare.py trains
# it later, on this very data): UTF-8 bytes of text / BYTES_PER_TOKEN. About 4 bytes a token
# is typical of English under a BPE vocabulary like autoresearch's; code, non-Latin scripts
# or a small vocabulary give fewer, so the estimate is rough, which is enough for a warning.
BYTES_PER_TOKEN = 4
# The tokens a validation shard should hold, from its consumer's eval tokens (autoresearch's:
# EVAL_TOKENS), are Consumer.val_tokens_wanted's (consumers.py).


def shard_name(index: int) -> str:
    return f"shard_{index:05d}.parquet"


VAL_SHARD_NAME = shard_name(VAL_SHARD_INDEX)
