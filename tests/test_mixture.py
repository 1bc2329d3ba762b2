"""Mixture definitions: a `-- mix:` header over datasets, parsed strictly, and list/show/explain on one."""

import hashlib
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers import run_query

from shardsql.cli import cli
from shardsql.definition import catalog
from shardsql.definition.mixture import MIX_BY, Component, Mixture, percent
from shardsql.errors import DefinitionError

EXAMPLE_LINE = "-- mix: fineweb-edu-high 70%, github-code-python 30%"


def dataset(folder: Path, name: str, texts: list[str | None], condition: str = "length(text) >= 10") -> Path:
    """A dataset definition `name.sql` in `folder` over a local parquet file it names by a relative path."""
    data = folder / "data" / name
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"text": pa.array(texts, pa.string())}), data / "part-0.parquet")
    path = folder / f"{name}.sql"
    path.write_text(f"-- description: {name} texts\n-- source: data/{name}\n\n"
                    f"SELECT text FROM source WHERE text IS NOT NULL AND {condition}\n")  # fmt: skip
    return path


def mixture(folder: Path, mix: str, name: str = "mix", extra: str = "") -> Path:
    path = folder / f"{name}.sql"
    path.write_text(f"-- description: a mixture\n-- mix: {mix}\n{extra}")
    return path


@pytest.fixture
def defs(tmp_path, monkeypatch):
    """Two local datasets, `a` and `b`, in tmp_path/defs, a definitions folder (so `a` names one):
    a keeps 6 of its 8 rows, b 3 of its 4."""
    folder = tmp_path / "defs"
    folder.mkdir()
    monkeypatch.setenv(catalog.SQL_DIR_ENV, str(folder))
    dataset(folder, "a", ["a text of 12"] * 6 + ["short", None])
    dataset(folder, "b", ["b" * 20] * 3 + ["tiny"])
    return folder


def fails(path: Path) -> str:
    """The message of the DefinitionError that loading `path` raises; it always shows a correct mixture."""
    with pytest.raises(DefinitionError) as info:
        catalog.load_file(path)
    message = str(info.value)
    assert "A mixture looks like this:" in message and EXAMPLE_LINE in message, message
    return message


# --- parsing ---------------------------------------------------------------------------------


def test_percentages_over_builtin_datasets_default_to_characters(tmp_path):
    path = mixture(tmp_path, "fineweb-edu-high 70%, github-code-python 30%", extra="-- license: mixed\n")
    m = catalog.load_file(path)
    assert isinstance(m, Mixture)
    assert (m.name, m.path, m.description, m.mix_by) == ("mix", path, "a mixture", "characters")
    assert [(c.definition.name, c.weight) for c in m.components] == [
        ("fineweb-edu-high", Fraction(7, 10)),
        ("github-code-python", Fraction(3, 10)),
    ]
    assert m.components[0].definition == catalog.resolve("fineweb-edu-high"), "a component is the parsed dataset"
    assert m.extra == {"license": "mixed"}
    assert m.text == path.read_text() and m.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert m.mix == "fineweb-edu-high 70%, github-code-python 30% (by characters)"
    assert MIX_BY == ("characters", "documents")


def test_plain_weights_are_normalised_exactly(defs, tmp_path):
    dataset(defs, "c", ["c" * 30])
    m = catalog.load_file(mixture(defs, "a 7, b 2, c 1", extra="-- mix-by: documents\n"))
    assert [c.weight for c in m.components] == [Fraction(7, 10), Fraction(2, 10), Fraction(1, 10)]
    assert m.mix_by == "documents"
    thirds = catalog.load_file(mixture(defs, "a 1, b 1, c 1.0", name="thirds"))
    assert [c.weight for c in thirds.components] == [Fraction(1, 3)] * 3
    assert sum(c.weight for c in thirds.components) == 1
    assert percent(Fraction(1, 3)) == "33.3333%" and percent(Fraction(1, 8)) == "12.5%"


def test_decimal_percentages_and_the_tolerance_on_their_sum(defs):
    m = catalog.load_file(mixture(defs, "a 12.5%, b 87.5%"))
    assert [c.weight for c in m.components] == [Fraction(1, 8), Fraction(7, 8)]
    # Within 1e-9 of 100%: accepted, and still normalised to add up to exactly 1.
    close = catalog.load_file(mixture(defs, "a 50.0000000001%, b 50%", name="close"))
    assert sum(c.weight for c in close.components) == 1
    assert close.components[0].weight == Fraction("50.0000000001") / Fraction("100.0000000001")
    message = fails(mixture(defs, "a 50.00001%, b 50%", name="far"))
    assert "the percentages add up to 100.00001%, not 100%" in message


def test_component_paths_are_read_from_the_mixtures_folder(defs, tmp_path, monkeypatch):
    (tmp_path / "mixes").mkdir()
    path = mixture(tmp_path / "mixes", "../defs/a.sql 60%, " + str(defs / "b.sql") + " 40%")
    monkeypatch.chdir(defs / "data")  # not where the mixture is
    m = catalog.resolve(str(path))
    assert [c.definition.path for c in m.components] == [defs / "a.sql", defs / "b.sql"]
    assert [c.definition.name for c in m.components] == ["a", "b"]
    assert m.components[0].definition.source == str(defs / "data" / "a"), "the component's own source, resolved"
    same_folder = catalog.load_file(mixture(defs, "a.sql 1, b.sql 1"))
    assert [c.definition.path for c in same_folder.components] == [defs / "a.sql", defs / "b.sql"]


def test_a_mixture_by_name_from_the_definitions_folders(defs):
    mixture(defs, "a 70%, b 30%", name="ab")
    m = catalog.resolve("ab")
    assert isinstance(m, Mixture) and [c.definition.name for c in m.components] == ["a", "b"]
    everything = {d.name: d for d in catalog.load_all()}
    assert isinstance(everything["ab"], Mixture) and "edu-code-mix" in everything
    datasets = catalog.load_datasets()
    assert all(not isinstance(d, Mixture) for d in datasets)
    assert {"a", "b", "fineweb-edu"} <= {d.name for d in datasets} and "ab" not in {d.name for d in datasets}


def test_the_sql_command_makes_views_of_datasets_only(defs):
    mixture(defs, "a 70%, b 30%", name="ab")
    assert run_query("SELECT count(*) AS n FROM a").table.to_pylist() == [{"n": 6}]


@pytest.mark.parametrize(
    ("mix", "extra", "message", "line"),
    [
        ("a 70%, b 30%", "-- mix-by: chars\n", "mix-by is 'chars': it must be characters or documents", 3),
        ("a 70%, b 3", "", "the weights mix percentages and plain numbers", 2),
        ("a, b 100%", "", "'a' has no weight: every component needs one", 2),
        ("a 0%, b 100%", "", "the weight of 'a' is 0%: a weight must be more than 0", 2),
        ("a -10, b 5", "", "the weight of 'a' is -10: a weight must be more than 0", 2),
        ("a 70%, b lots", "", "'lots' is not a weight (for 'b')", 2),
        ("a 70%, b 20%", "", "the percentages add up to 90%, not 100%", 2),
        ("a 100%", "", "a mixture needs at least 2 components, the mix names 1", 2),
        ("a 50%, , b 50%", "", "the mix has an empty entry", 2),
        ("a 50%, a 50%", "", "'a' is listed twice: give each component once", 2),
        ("a 50%, a.sql 50%", "", "'a.sql' is listed twice (as 'a')", 2),
        ("a 70%, b 30%", "\nSELECT text FROM source\n", "a mixture has no SELECT", 4),
        ("a 70%, b 30%", "-- source: hf://datasets/x/y/*.parquet\n", "'source' is not allowed in a mixture", 3),
        ("a 70%, b 30%", "-- revision: main\n", "'revision' is not allowed in a mixture", 3),
        ("a 70%, b 30%", "-- mixby: documents\n", "unknown header key 'mixby' (a mixture's keys: description", 3),
        ("a 70%, b 30%", "-- mix: a 1, b 1\n", "header key 'mix' is given twice", 3),
        ("a 70%, missing.sql 30%", "", "component 'missing.sql': ", 2),
    ],
)
def test_mix_errors_name_the_line_and_show_a_mixture(defs, mix, extra, message, line):
    text = fails(mixture(defs, mix, extra=extra))
    assert message in text
    assert f"mix.sql:{line}: " in text


def test_a_missing_component_file_is_named_from_the_mixtures_folder(defs):
    text = fails(mixture(defs, "a.sql 70%, gone.sql 30%"))
    assert f"mix.sql:2: component 'gone.sql': {defs / 'gone.sql'}: no such definition file" in text


def test_a_mixture_needs_a_description(defs):
    path = defs / "mix.sql"
    path.write_text("-- mix: a.sql 70%, b.sql 30%\n-- mix-by: characters\n")
    assert "the header has no 'description'" in fails(path)
    path.write_text("-- description: d\n-- mix-by: documents\n")
    assert "the header has no 'mix'" in fails(path), "mix-by alone makes a mixture, which needs its mix"


def test_an_unknown_component_lists_the_known_datasets(tmp_path):
    text = fails(mixture(tmp_path, "fineweb-edj 70%, github-code-python 30%"))
    assert "mix.sql:2: component 'fineweb-edj': Unknown dataset 'fineweb-edj'." in text
    assert "Did you mean: fineweb-edu" in text
    assert "Known datasets: cosmopedia-v2, edu-code-mix, fineweb, fineweb-edu," in text


def test_a_nested_mixture_is_refused(defs):
    mixture(defs, "a 1, b 1", name="inner")
    text = fails(mixture(defs, "inner.sql 50%, a.sql 50%"))
    assert "mix.sql:2: 'inner.sql' is itself a mixture: nested mixtures are not supported" in text
    assert "list its components directly" in text
    builtin = fails(mixture(defs, "edu-code-mix 50%, a.sql 50%", name="outer"))
    assert "'edu-code-mix' is itself a mixture: nested mixtures are not supported" in builtin


def test_mixtures_naming_each_other_are_refused_without_reading_each_other_forever(defs):
    mixture(defs, "two.sql 50%, a.sql 50%", name="one")
    mixture(defs, "one.sql 50%, b.sql 50%", name="two")
    assert "'two.sql' is itself a mixture: nested mixtures are not supported" in fails(defs / "one.sql")


def test_a_mixture_cannot_contain_itself(defs):
    text = fails(mixture(defs, "mix.sql 1, a.sql 1"))
    assert "mix.sql:2: a mixture cannot contain itself: 'mix.sql' is this file" in text
    text = fails(mixture(defs, "a 50%, me 50%", name="me"))
    assert "me.sql:2: a mixture cannot contain itself: 'me' is this file" in text


def test_a_component_with_a_bad_header_is_reported_at_its_own_line(defs):
    (defs / "bad.sql").write_text("-- description: d\n-- sourc: x\n\nSELECT text FROM source\n")
    with pytest.raises(DefinitionError) as info:
        catalog.load_file(mixture(defs, "a.sql 50%, bad.sql 50%"))
    assert f"{defs / 'bad.sql'}:2: unknown header key 'sourc'" in str(info.value)


def test_parse_definition_refuses_a_mixture(defs):
    with pytest.raises(DefinitionError, match=r"this is a mixture \(its header has a `-- mix:` line\)"):
        catalog.parse_definition("-- description: d\n-- mix: a 1, b 1\n", defs / "m.sql")


def test_component_is_a_frozen_pair_of_definition_and_weight(defs):
    m = catalog.load_file(mixture(defs, "a 3, b 1"))
    assert m.components[1] == Component(catalog.load_file(defs / "b.sql"), Fraction(1, 4))
    with pytest.raises(AttributeError):
        m.components[0].weight = Fraction(1)  # type: ignore[misc]


# --- the command line --------------------------------------------------------------------------


def run(*args):
    result = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in result.output
    return result


def test_list_shows_a_mixture_with_its_mix(defs):
    mixture(defs, "a 2, b 1", name="ab", extra="-- mix-by: documents\n")
    result = run("list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("ab "))
    assert "a mixture" in lines[at] and lines[at + 1].split() == "mix: a 66.6667%, b 33.3333% (by documents)".split()
    assert "mix: fineweb-edu-high 70%, github-code-python 30% (by characters)" in result.output, "the built-in one"
    assert "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet" in result.output, "datasets show sources"


def test_show_a_mixture_prints_each_component_and_its_resolved_source(defs):
    path = mixture(defs, "a.sql 75%, b.sql 25%", extra="-- notes: a test\n")
    result = run("show", str(path))
    assert result.exit_code == 0, result.output
    out = result.output
    for line in (
        "name:        mix",
        f"file:        {path}",
        "description: a mixture",
        "mix-by:      characters",
        "notes:       a test",
        f"sha256:      {hashlib.sha256(path.read_bytes()).hexdigest()}",
        "  a  75% of the characters",
        f"    file:      {defs / 'a.sql'}",
        f"    source:    {defs / 'data' / 'a'}",
        "    revision:  (default)",
        "  b  25% of the characters",
        f"resolved:    a: {defs / 'data' / 'a'}: 1 file,",
        f"resolved:    b: {defs / 'data' / 'b'}: 1 file,",
    ):
        assert line in out, (line, out)
    assert f"  {defs / 'data' / 'b' / 'part-0.parquet'}  " in out
    assert out.index("  a  75%") < out.index("  b  25%") < out.index("resolved:    a:") < out.index("resolved:    b:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "--revision", "v1"], "--revision applies to one dataset, and mix is a mixture: give it to "
                                       "`shardsql show` for one of its components (a, b)"),
        (["show", "--source", "/x"], "--source applies to one dataset"),
        (["explain", "--revision", "v1", "--source", "/x"], "--revision and --source apply to one dataset, "
                                                            "and mix is a mixture: give them to `shardsql explain`"),
        (["explain", "--against", "A"], "--against compares two datasets, and mix is a mixture: compare one of its "
                                        "components (a, b)"),
    ],
)  # fmt: skip
def test_options_for_one_dataset_are_one_clean_error_for_a_mixture(defs, args, message):
    path = mixture(defs, "a.sql 1, b.sql 1")
    command, *options = args
    result = run(command, str(path), *[str(defs / "a.sql") if o == "A" else o for o in options])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1, "one line, no usage text"


def test_explain_against_a_mixture_is_refused_too(defs):
    path = mixture(defs, "a.sql 1, b.sql 1")
    result = run("explain", str(defs / "a.sql"), "--against", str(path))
    assert result.exit_code == 2 and "--against compares two datasets, and mix is a mixture" in result.output


def test_explain_a_mixture_runs_the_funnel_for_each_component_on_its_own_source(defs):
    path = mixture(defs, "a.sql 70%, b.sql 30%", extra="-- mix-by: documents\n")
    result = run("explain", str(path), "--sample-rows", "100")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "== a: 70% of mix's documents ==" in out and "== b: 30% of mix's documents ==" in out
    a_part, b_part = out.split("== b: 30%")
    assert f"Sample: the first 8 rows of {defs / 'data' / 'a'}" in a_part
    assert f"Sample: the first 4 rows of {defs / 'data' / 'b'}" in b_part
    # Each funnel: rows in, what each condition removes, rows out (a keeps 6 of 8, b 3 of 4).
    assert f"a  ({defs / 'a.sql'})" in a_part and f"b  ({defs / 'b.sql'})" in b_part
    assert [line.split()[:2] for line in a_part.splitlines() if line.strip().startswith(("in ", "out "))] == [
        ["in", "8"], ["out", "6"]
    ]  # fmt: skip
    assert [line.split()[:2] for line in b_part.splitlines() if line.strip().startswith(("in ", "out "))] == [
        ["in", "4"], ["out", "3"]
    ]  # fmt: skip
    assert '("text" IS NOT NULL)' in a_part and '(length("text") >= 10)' in b_part


def test_show_and_explain_of_a_dataset_are_unchanged_by_mixtures(defs):
    show = run("show", str(defs / "a.sql"))
    assert show.exit_code == 0, show.output
    assert "SELECT text FROM source WHERE" in show.output
    assert f"resolved:    {defs / 'data' / 'a'}: 1 file," in show.output
    explain = run("explain", str(defs / "a.sql"), "--sample-rows", "5")
    assert explain.exit_code == 0 and f"Sample: the first 5 rows of {defs / 'data' / 'a'}" in explain.output
    assert "==" not in explain.output


def test_the_builtin_mixture_through_the_hub_stand_in(hub_dataset):
    hub_dataset("fineweb-edu-high", files=2, rows_per_file=1000)
    hub_dataset("github-code-python", files=2, rows_per_file=1000)
    show = run("show", "edu-code-mix")
    assert show.exit_code == 0, show.output
    assert "  fineweb-edu-high  70% of the characters" in show.output
    assert "    revision:  refs/convert/parquet" in show.output
    edu = "hf://datasets/HuggingFaceFW/fineweb-edu/sample/10BT/*.parquet"
    code = "hf://datasets/codeparrot/github-code-clean/Python-all/partial-train/*.parquet"
    assert f"resolved:    fineweb-edu-high: {edu} at main (commit " in show.output
    assert f"resolved:    github-code-python: {code} at refs/convert/parquet (commit " in show.output
    explain = run("explain", "edu-code-mix", "--sample-rows", "300")
    assert explain.exit_code == 0, explain.output
    assert "== fineweb-edu-high: 70% of edu-code-mix's characters ==" in explain.output
    assert "== github-code-python: 30% of edu-code-mix's characters ==" in explain.output
    assert explain.output.count("Sample: the first 300 rows of hf://datasets/") == 2
