"""A conversion's options: what `shardsql convert` is asked, checked once, as every part of it reads them.

`ConvertOptions` holds the command line's choices (`--num-shards`, `--no-shuffle`, `--for` ...)
with the library's defaults, says what they mean together (`rows_wanted`, `order`) and refuses
combinations that cannot work (`validate`), each with what to do instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ..autoresearch import MAX_TRAIN_SHARDS, ROW_GROUP_SIZE, ROWS_PER_SHARD
from ..consumers import DEFAULT, Consumer, base_folder
from ..definition.analysis import Shape
from ..definition.mixture import Mixture
from ..definition.model import Definition
from ..errors import OptionsError
from ..output.cache_dir import CacheDir
from ..output.shards import ShardSizes

LIVE = "live"  # --val-from live: the validation shard already in the cache folder, kept byte for byte
ENGINES = ("local", "ray")  # --engine: where row-by-row definitions run


@dataclass
class ConvertOptions:
    num_shards: int = 10
    num_source: int | None = None  # at most this many source files; None: as many as needed
    rows_per_shard: int = ROWS_PER_SHARD
    row_group_size: int = ROW_GROUP_SIZE
    revision: str | None = None  # overrides the definition's revision
    source: str | None = None  # overrides the definition's source URL
    consumer: Consumer = DEFAULT  # who reads the shards (--for): where they go, and what to run next
    cache_dir: Path | None = None  # the consumer's base folder; None: its own (consumer.base_dir())
    skip_backup: bool = False
    # Units run at once: threads (local; default the machine's cores) or Ray tasks (ray; default
    # the cluster's CPUs). The shards are the same for any number, and either engine.
    workers: int | None = None
    engine: str = "local"  # "local" or "ray" (run/ray/); whole-source definitions always run locally
    # Shuffled (commands/shuffle.py): a seeded random, deduplicated sample over the whole source.
    # shuffle=False is the in-order conversion: the first kept rows, in source order, no deduplication.
    shuffle: bool = True
    seed: int = 0
    val_rows: int | None = None  # rows of the validation shard; None: rows_per_shard
    # Where the validation shard's rows come from (commands/shuffle.py): None, this conversion's
    # own rows; a dataset or mixture (a name or a .sql file), drawn by the same seed; or "live",
    # the validation shard already in the cache folder, kept byte for byte.
    val_from: str | None = None
    allow_short: bool = False  # a mixture whose component runs out writes fewer rows, in the same proportions

    def __post_init__(self) -> None:
        given = self.cache_dir
        self.cache_dir = base_folder(Path(given)) if given is not None else self.consumer.base_dir()

    @property
    def cache(self) -> CacheDir:
        """The cache folder the shards go to, laid out for the consumer."""
        assert self.cache_dir is not None  # __post_init__ gives the consumer's own when none is given
        return CacheDir(self.cache_dir, self.consumer)

    def validate(self) -> None:
        for name in ("num_shards", "rows_per_shard", "row_group_size"):
            if getattr(self, name) < 1:
                raise OptionsError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.engine not in ENGINES:
            raise OptionsError(f"--engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers is not None and self.workers < 1:
            raise OptionsError(f"--workers must be at least 1, got {self.workers}")
        if self.val_rows is not None and self.val_rows < 1:
            raise OptionsError(f"--val-rows must be at least 1, got {self.val_rows}")
        if self.seed < 0:
            raise OptionsError(f"--seed must be at least 0, got {self.seed}")
        if self.num_source is not None and self.num_source < 1:
            raise OptionsError(f"--num-source must be at least 1, got {self.num_source}")
        if self.val_from is not None and not self.shuffle:
            raise OptionsError("--val-from draws the validation shard with the shuffle's seed: drop --no-shuffle")
        if self.val_from == LIVE and self.val_rows is not None:
            raise OptionsError("--val-from live keeps the live validation shard as it is: drop --val-rows")
        if self.num_shards > MAX_TRAIN_SHARDS:
            # Training shards are numbered from 0; shard_06542 is the validation shard's fixed
            # name, so training shard 6542 would overwrite it (and the manifest list it twice).
            raise OptionsError(
                f"--num-shards must be at most {MAX_TRAIN_SHARDS:,}, got {self.num_shards:,}: training shards are "
                f"shard_00000 to shard_{MAX_TRAIN_SHARDS - 1:05d} and must stop before the validation shard's "
                f"number ({self.consumer.validation})"
            )

    def recorded(self) -> dict[str, object]:
        """The options as the manifest records them."""
        values = dataclasses.asdict(self)
        values["cache_dir"] = str(self.cache_dir)
        values["consumer"] = self.consumer.name  # what `verify`, `backups` and `restore` find the layout from
        return values

    @property
    def shard_sizes(self) -> ShardSizes:
        """How the rows are cut into shards, as asked (a shuffle with --val-from may write fewer training shards)."""
        return ShardSizes(self.num_shards, self.rows_per_shard, self.row_group_size, self.val_rows)

    @property
    def rows_wanted(self) -> int:
        """Training shards' rows and the validation shard's."""
        return self.num_shards * self.rows_per_shard + (self.val_rows or self.rows_per_shard)

    def order(self, shape: Shape) -> str:
        """The output's order: "shuffled", "source" (--no-shuffle) or "sql" (the definition's ORDER BY)."""
        if shape.ordered:
            return "sql"
        return "shuffled" if self.shuffle else "source"


def for_one_dataset(model: Definition | Mixture, command: str, **options: object) -> None:
    """Refuse options that apply to one dataset (`revision=`, `source=`: --revision, --source)
    when `model` is a mixture, whose components name their own: the error names the options
    given a value, in their order, and says to give them to `shardsql COMMAND` for a component."""
    given = [f"--{name.replace('_', '-')}" for name, value in options.items() if value]
    if isinstance(model, Mixture) and given:
        names = ", ".join(c.definition.name for c in model.components)
        verb, them = ("apply", "them") if len(given) > 1 else ("applies", "it")
        raise OptionsError(f"{' and '.join(given)} {verb} to one dataset, and {model.name} is a mixture: "
                           f"give {them} to `shardsql {command}` for one of its components ({names})")  # fmt: skip
