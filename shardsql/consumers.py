"""Who reads the shards: autoresearch or nanochat, and where each keeps its data and tokenizer.

karpathy/autoresearch and karpathy/nanochat read one format (autoresearch.py: a `text`
column, 1,024-row row groups, `shard_06542.parquet` as the validation shard) from
different places, as issue 27 describes them:

    autoresearch  ~/.cache/autoresearch/data/               its tokenizer in tokenizer/ beside it
    nanochat      $NANOCHAT_BASE_DIR/base_data_climbmix/    its tokenizer in tokenizer/ beside it
                  (NANOCHAT_BASE_DIR defaults to ~/.cache/nanochat)

Each is one `Consumer`: its base folder (and the variable that moves it), the data and
tokenizer folders in it, how it finds the validation shard, what to run next, how its
own downloader would mix climbmix shards into converted ones, and how many tokens its
evaluation reads (which sizes the validation-size warning). The cache folder (output/cache_dir.py:
the lock, staging, backups, the swap, restore), `convert` and `verify` take one, so both
consumers share one code path; what differs between them is data here, never a branch on
a consumer's name elsewhere.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from .autoresearch import BYTES_PER_TOKEN, EVAL_TOKENS, VAL_SHARD_NAME
from .errors import OptionsError


@dataclass(frozen=True)
class Consumer:
    name: str  # as `--for` names it and the manifest records it (options.consumer)
    default_base: Path  # its base folder when `base_env` is unset; "~" is the user's home
    base_env: str | None  # the environment variable that moves its base folder, read as it reads it
    data_folder: str  # in the base folder: the shards it reads
    tokenizer_folder: str  # in the base folder: the tokenizer it trains on them (backed up with them)
    val_by_position: bool  # it evaluates on the last file in sorted order, not on a file of a fixed name
    validation: str  # how it finds the validation shard, in words
    reader: str  # what reads every parquet file in the data folder, in messages ("prepare.py would train on it")
    null_note: str  # why a null text is an error for it
    next_heading: str  # the summary's line before the next steps
    next_steps: tuple[str, ...]  # commands to run in its checkout after converting; {n}: the training shards
    mix_warning: str  # how its own downloader would add climbmix shards beside converted ones
    eval_tokens: int  # the tokens one evaluation reads from the validation shard (as it ships)
    # None: eval_tokens is fixed in its code; else the setting it is the default of, in words.
    eval_setting: str | None = None

    def base_dir(self) -> Path:
        """The base folder it reads now: $base_env where set, else default_base; absolute (base_folder)."""
        value = os.environ.get(self.base_env) if self.base_env else None
        return base_folder(Path(value or self.default_base))

    def reads_anywhere(self) -> Path | None:
        """The base folder it reads whatever folder it is run in; None where that depends on the folder:
        $base_env relative, or starting with a "~", which shardsql expands and nanochat does not."""
        value = os.environ.get(self.base_env) if self.base_env else None
        if not value:
            return base_folder(self.default_base)
        return base_folder(Path(value)) if Path(value).is_absolute() else None

    @property
    def val_tokens_wanted(self) -> int:
        """The tokens its validation shard should hold: 8/5 of eval_tokens. Both evaluations read
        BOS-aligned, best-fit packed rows that leave part of each document unread, so a shard of
        just eval_tokens would make them read text again; for autoresearch, 33,554,432 (32 x 2^20)."""
        return self.eval_tokens * 8 // 5

    def base_described(self) -> str:
        """Its base folder in words, for help texts: "~/.cache/autoresearch", "$NANOCHAT_BASE_DIR, else ..."."""
        return f"${self.base_env}, else {self.default_base}" if self.base_env else str(self.default_base)

    def next_lines(self, train_shards: int, base: Path, when: str = "Next") -> list[str]:
        """What to run after a conversion into `base`, and the downloader's trap: the summary's last
        lines (and the demo's, `when` "Then").

        Where it reads its base folder from a variable and `base` is not the folder it reads now
        (--cache-dir), or may not be from its checkout (a relative $base_env, or one with a "~"), the
        first step sets that variable, to the absolute folder. Where it reads one fixed folder and
        `base` is another, a comment line says that these shards are not the ones it will read."""
        lines = [f"{when}: {self.next_heading}:"]
        base, reads = base_folder(base), self.reads_anywhere()
        if base != reads and self.base_env:
            lines.append(f"  export {self.base_env}={shlex.quote(str(base))}")
        elif base != reads and reads is not None:
            # It reads one fixed folder: shards put elsewhere (--cache-dir) are not what it trains on.
            lines.append(
                f"  # {self.name} reads {reads / self.data_folder}, not {base / self.data_folder}: convert "
                "without --cache-dir to train on this set"
            )
        lines += [f"  {step.format(n=train_shards)}" for step in self.next_steps]
        return [*lines, f"({self.mix_warning})"]

    def val_advice(self, tokens: int, rows: int, train_rows: int) -> str | None:
        """A warning when a validation shard of `rows` rows and `tokens` estimated tokens is below
        val_tokens_wanted (the one threshold: docs/how-it-works.md), with the --val-rows that would
        reach it at its mean length; None if not, and None for a toy run: where the whole output
        (`train_rows` training rows and the validation shard, at its mean) holds fewer tokens than
        that, no training run its evaluation would measure is in it (the demo, a quick try).
        The dry run, the summary and `verify` all ask here."""
        wanted = self.val_tokens_wanted
        if tokens >= wanted:
            return None
        per_row = tokens / rows if rows else 0
        if per_row * (train_rows + rows) < wanted:
            return None
        needed = -(-wanted // max(1, int(per_row)))
        reach = f"--val-rows {needed:,}" if per_row >= 1 else "a larger --val-rows"
        setting = (
            "" if self.eval_setting is None else f" (at the default {self.eval_setting}; a larger value needs more)"
        )
        return (
            f"the validation shard holds about {tokens:,} tokens (UTF-8 bytes / {BYTES_PER_TOKEN}), under the "
            f"{wanted:,} tokens that {self.name}'s evaluation reads without repeating text{setting}; {reach} would "
            "reach it"
        )


def base_folder(path: Path) -> Path:
    """A base folder as every command takes it (--cache-dir, $NANOCHAT_BASE_DIR, the defaults): "~"
    expanded and made absolute, so that what is printed (an `export`, the summary) holds from any folder."""
    return Path(os.path.abspath(path.expanduser()))


def elsewhere(shown: Consumer) -> list[str]:
    """Hints for a command that found nothing of `shown`'s in its default folder, run without --for:
    each other consumer whose data folder is in its base folder, and the --for that reaches it."""
    return [
        f"{c.name}'s data is in {c.base_dir() / c.data_folder}: add --for {c.name}"
        for c in CONSUMERS.values()
        if c != shown and (c.base_dir() / c.data_folder).is_dir()
    ]


AUTORESEARCH = Consumer(
    name="autoresearch",
    default_base=Path("~/.cache/autoresearch"),
    base_env=None,
    data_folder="data",
    tokenizer_folder="tokenizer",
    val_by_position=False,
    validation=f"autoresearch's prepare.py fixes its name, {VAL_SHARD_NAME}",
    reader="prepare.py",
    null_note="prepare.py fails on a null",
    next_heading="in your autoresearch checkout, train the tokenizer for the new data",
    next_steps=("uv run prepare.py --num-shards {n}",),
    mix_warning="Pass --num-shards: without it prepare.py downloads climbmix shards that are missing and mixes them "
    "in.",
    eval_tokens=EVAL_TOKENS,
)

NANOCHAT = Consumer(
    name="nanochat",
    default_base=Path("~/.cache/nanochat"),
    base_env="NANOCHAT_BASE_DIR",
    data_folder="base_data_climbmix",
    tokenizer_folder="tokenizer",
    val_by_position=True,
    validation=f"nanochat evaluates on the last file in sorted order, which must be {VAL_SHARD_NAME}",
    reader="nanochat",
    null_note="nanochat needs a string in every row",
    next_heading="in your nanochat checkout, train the tokenizer on the new data, then pretrain "
    "(their options: nanochat's README)",
    next_steps=("python -m scripts.tok_train", "python -m scripts.base_train"),
    mix_warning="Do not run nanochat's downloader, python -m nanochat.dataset -n N, on this folder, nor "
    "runs/speedrun.sh, which runs it: it skips the shard files that exist and downloads climbmix shards for the "
    "rest, which nanochat would then train on beside these.",
    # scripts/base_train.py: --eval-tokens, default 80*524288, read through the same BOS-aligned loader.
    eval_tokens=80 * 524_288,
    eval_setting="--eval-tokens of python -m scripts.base_train",
)

CONSUMERS = {c.name: c for c in (AUTORESEARCH, NANOCHAT)}
DEFAULT = AUTORESEARCH  # `--for`'s default, and the consumer of data that says nothing of its own


def named(name: str) -> Consumer:
    """The consumer of this name (`--for NAME`)."""
    if name not in CONSUMERS:
        raise OptionsError(f"--for takes {' or '.join(CONSUMERS)}, got {name!r}; e.g. --for nanochat")
    return CONSUMERS[name]


def recorded(record: Mapping[str, object] | None) -> Consumer | None:
    """The consumer a manifest records (its options' `consumer`); None where it records none
    (made before --for, so for autoresearch, or by hand) or one this version does not know."""
    options = record.get("options") if isinstance(record, Mapping) else None
    name = options.get("consumer") if isinstance(options, Mapping) else None
    return CONSUMERS.get(name) if isinstance(name, str) else None


def found(given: Consumer | None, recorded: Consumer | None, folders: Collection[str], where: Path) -> Consumer:
    """The consumer a command serves where `--for` may be left out: the one given; else the one the
    live data's manifest records (`recorded`); else the one whose data folder's name is among
    `folders` (the folders at `where`); else DEFAULT, autoresearch. Both data folders there, and nothing
    to tell them apart: an error."""
    if given is not None:
        return given
    if recorded is not None:
        return recorded
    present = [c for c in CONSUMERS.values() if c.data_folder in folders]
    if len(present) > 1:
        held = " and ".join(f"{c.name}'s {c.data_folder}/" for c in present)
        raise OptionsError(f"{where} holds {held}: say which with --for, e.g. --for {present[-1].name}")
    return present[0] if present else DEFAULT
