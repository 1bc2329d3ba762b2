"""Every file in sql/: a dataset parses, its SQL binds against its source's shape, and a
conversion through the local Hub stand-in equals the seed script's output row for row; a
mixture names built-in datasets."""

from fractions import Fraction

import pytest
from helpers import read_texts, row_groups
from seed_reference import seed_shards

from shardsql.commands.convert import convert
from shardsql.commands.options import ConvertOptions
from shardsql.definition import catalog
from shardsql.definition.mixture import Mixture
from shardsql.standin.samples import LAYOUTS

# The seed's DATASETS table: the column it reads as text, and its min_score filter.
SEED = {
    "fineweb-edu": ("text", None),
    "fineweb-edu-high": ("text", 3),
    "cosmopedia-v2": ("text", None),
    "slimpajama": ("text", None),
    "fineweb": ("text", None),
    "github-code-python": ("code", None),
    "slimpajama-627b": ("text", None),
    "pubmed-abstract": ("abstract", None),
}
NAMES = sorted(d.name for d in catalog.load_datasets())
MIXTURES = sorted(name for name in catalog.definition_paths() if name not in NAMES)


def test_every_builtin_file_is_a_dataset_or_a_mixture_of_builtin_datasets():
    assert MIXTURES == ["edu-code-mix"]
    for name in MIXTURES:
        mixture = catalog.resolve(name)
        assert isinstance(mixture, Mixture), name
        assert mixture.description and mixture.extra.get("notes"), "a built-in mixture says what it is"
        assert [c.definition.name for c in mixture.components] == ["fineweb-edu-high", "github-code-python"]
        assert all(c.definition.path == catalog.definition_paths()[c.definition.name] for c in mixture.components)
        assert sum(c.weight for c in mixture.components) == 1
        assert [c.weight for c in mixture.components] == [Fraction(7, 10), Fraction(3, 10)]
        assert mixture.mix_by == "characters"


@pytest.mark.parametrize("name", NAMES)
def test_definition_matches_the_seed_repo_and_revision(name):
    d = catalog.resolve(name)
    repo, revision, sub, *_ = LAYOUTS[name]
    assert d.source.startswith(f"hf://datasets/{repo}/{sub}/"), d.source
    assert (d.revision or "main") == revision
    assert name in SEED


@pytest.mark.parametrize("name", NAMES)
def test_conversion_through_the_hub_equals_the_seed(name, hub_dataset, tmp_path):
    folder = hub_dataset(name)
    column, min_score = SEED[name]
    options = ConvertOptions(shuffle=False, num_shards=2, rows_per_shard=1200, cache_dir=tmp_path / "cache")
    result = convert(catalog.resolve(name), options)

    expected, read, filtered = seed_shards(sorted(folder.glob("*.parquet")), column, 2, 1200, min_score)
    data = tmp_path / "cache" / "data"
    assert sorted(p.name for p in data.glob("*.parquet")) == sorted(expected)
    for shard, rows in expected.items():
        assert read_texts(data / shard) == rows, shard
        assert row_groups(data / shard) == [1024, 176]
    assert [s.name for s in result.shards] == list(expected)
    assert result.source.commit and len(result.source.commit) == 40
    assert not result.ran_out


@pytest.mark.parametrize("name", ["fineweb-edu-high", "github-code-python"])
def test_running_out_of_source_equals_the_seed(name, hub_dataset, tmp_path):
    folder = hub_dataset(name, files=2, rows_per_file=1000, row_group_size=300)
    column, min_score = SEED[name]
    result = convert(
        catalog.resolve(name), ConvertOptions(shuffle=False, num_shards=5, rows_per_shard=500, cache_dir=tmp_path)
    )

    expected, read, filtered = seed_shards(sorted(folder.glob("*.parquet")), column, 5, 500, min_score)
    assert len(expected) < 6, "the sample is meant to run out"
    assert result.ran_out
    assert (result.rows_read, result.rows_read - result.rows_kept) == (read, filtered)
    for shard, rows in expected.items():
        assert read_texts(tmp_path / "data" / shard) == rows
