"""The documentation holds: docs/cli.md is what docs/generate_cli.py writes from the code now,
the README stays short, and every relative link in the docs points at a file (and a heading)
that exists."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 250
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")  # [text](target)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)  # fenced code blocks: no links there
CODE = re.compile(r"`[^`\n]*`")  # inline code spans


def documents() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "CONTRIBUTING.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "bench" / "README.md",
    ]


def links(path: Path) -> list[str]:
    text = CODE.sub("", FENCE.sub("", path.read_text()))
    return LINK.findall(text)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    text = CODE.sub(lambda m: m.group(0).strip("`"), heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", text, re.M)}


def test_cli_reference_is_what_the_generator_writes():
    """docs/cli.md is every command's --help as it is now: run `./dev docs` after changing one."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate_cli.py"), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cli_reference_has_every_command():
    reference = (ROOT / "docs" / "cli.md").read_text()
    listed = subprocess.run(
        [sys.executable, "-m", "shardsql", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    commands = re.findall(r"^  (\S+)  ", listed.split("Commands:", 1)[1], re.M)
    assert commands, listed
    for name in commands:
        assert f"## `shardsql {name}`" in reference, name


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_every_relative_link_points_at_something_that_exists():
    broken = []
    for document in documents():
        assert document.exists(), document
        for target in links(document):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked here
                continue
            file_part, _, anchor = target.partition("#")
            linked = (document.parent / file_part).resolve() if file_part else document
            where = f"{document.relative_to(ROOT)}: {target}"
            if not linked.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{where} (no such heading)")
    assert not broken, broken


def test_link_checker_sees_links_and_headings(tmp_path):
    """The checker itself: it finds links outside code, and headings' anchors as GitHub makes them."""
    page = tmp_path / "page.md"
    page.write_text(
        "# How shardsql reads the Hub\n\nSee [a](other.md#x) and `[b](not-a-link.md)`.\n\n```\n[c](d.md)\n```\n"
    )
    assert links(page) == ["other.md#x"]
    assert anchors(page) == {"how-shardsql-reads-the-hub"}
    assert slug("Scaling out with Ray") == "scaling-out-with-ray"
    assert slug("Order, sample and validation split") == "order-sample-and-validation-split"
    assert slug("Running `shardsql`") == "running-shardsql"


# Upper-case names the docs use that are not shardsql's settings: a nanochat/autoresearch
# constant, GitHub Actions' own variable (docs/review.md's job) and a file-name pattern.
NOT_VARIABLES = {"EVAL_TOKENS", "GITHUB_STEP_SUMMARY", "NAME_BASE"}


def test_every_environment_variable_the_docs_list_is_in_the_top_level_help():
    from click.testing import CliRunner

    from shardsql.cli import cli

    help_text = CliRunner().invoke(cli, ["--help"]).output
    pages = [ROOT / "README.md", *(p for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "cli.md")]
    named = {m for page in pages for m in re.findall(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", page.read_text())}
    assert {"HF_ENDPOINT", "HF_TOKEN", "SHARDSQL_SQL_DIR", "NANOCHAT_BASE_DIR", "RAY_ADDRESS"} <= named
    missing = sorted(name for name in named - NOT_VARIABLES if name not in help_text)
    assert not missing, f"listed in the docs, not in `shardsql --help`: {missing}"


def test_the_help_says_nothing_of_versions_that_never_were():
    from click.testing import CliRunner

    from shardsql.cli import cli

    helps = "\n".join(CliRunner().invoke(cli, [*command, "--help"]).output for command in ([], ["convert"]))
    assert "before 0.2" not in helps and "the original convert_dataset.py" in " ".join(helps.split())
