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
