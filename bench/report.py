"""The benchmark's table: one row a figure, with its goal and whether it was met, rendered
as markdown for bench/results/latest.md, under a headline of what a user sees: the main and
the small job's fresh processes, wall and CPU side by side, against the issue's goals."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from measure import Usage


@dataclass
class Row:
    measure: str
    figure: str
    goal: str = ""
    met: bool | None = None  # None: for information

    @property
    def met_text(self) -> str:
        return _met_text(self.met)


def _met_text(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**NO**")


@dataclass(frozen=True)
class Ratio:
    """A ratio of two contenders' figures, and its goal: a ceiling, or with `at_least` a floor."""

    value: float
    goal: float | None = None  # None: for information
    at_least: bool = False

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        return self.value >= self.goal if self.at_least else self.value <= self.goal

    @property
    def goal_text(self) -> str:
        return "" if self.goal is None else f"{'>=' if self.at_least else '<='} {self.goal:g}x"

    def text(self) -> str:
        return f"{self.value:.2f}x"

    def record(self) -> dict:
        return {"value": round(self.value, 3), "goal": self.goal_text or None, "met": self.met}


@dataclass
class Contender:
    name: str
    run: Callable[[Path], Usage]  # output folder in; what the run cost out
    shards_in: Callable[[Path], Path]  # output folder -> the folder holding its shards
    hub: bool = False  # reads through the Hub stand-in
    latency_s: float = 0.0  # added by the stand-in to every request
    # A library call in the benchmark's process after its imports (the diagnostic), not a
    # fresh process started as its user starts it.
    in_process: bool = False
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_rss: list[float] = field(default_factory=list)  # MB, a fresh process's, per run
    served: list[dict] = field(default_factory=list)  # the stand-in's counters, per run
    check: tuple[bool, str] | None = None
    layout: dict | None = None
    # Checked against the seed loop's shards row for row; False: a shuffled run, checked for
    # the seed's shard names and row counts and no repeated text instead.
    in_order: bool = True

    @property
    def best(self) -> float:
        """The lowest wall time of the timed runs (the issue's "best of two")."""
        return min(self.seconds)

    @property
    def best_cpu(self) -> float:
        """The lowest CPU time of the timed runs."""
        return min(self.cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)

    @property
    def peak_rss_mb(self) -> float | None:
        """The highest peak RSS of the timed runs (a fresh process's; None in-process)."""
        return max(self.peak_rss) if self.peak_rss else None

    def add(self, usage: Usage) -> None:
        """A timed run's cost."""
        self.seconds.append(usage.seconds)
        self.cpu.append(usage.cpu)
        if usage.peak_rss_mb is not None:
            self.peak_rss.append(usage.peak_rss_mb)

    def timing_text(self) -> str:
        """Wall and CPU time, best (median), and the peak RSS."""
        rss = "" if self.peak_rss_mb is None else f", peak RSS {self.peak_rss_mb:,.0f} MB"
        return (f"{self.best:.2f} s ({self.median:.2f} s) wall, {self.best_cpu:.2f} s ({self.median_cpu:.2f} s) CPU"
                f"{rss}")  # fmt: skip

    def record(self) -> dict:
        return {
            "in_process": self.in_process,
            "seconds": [round(s, 3) for s in self.seconds],
            "cpu_seconds": [round(s, 3) for s in self.cpu],
            "peak_rss_mb": [round(s) for s in self.peak_rss] or None,
            "best_seconds": round(self.best, 3),
            "best_cpu_seconds": round(self.best_cpu, 3),
            "median_seconds": round(self.median, 3),
            "median_cpu_seconds": round(self.median_cpu, 3),
            "same_as_seed": None if self.check is None else {"ok": self.check[0], "detail": self.check[1]},
            "output_bytes": self.layout["bytes"],
            "row_groups_all_1024": self.layout["row_groups_1024"],
            "codecs": self.layout["codecs"],
            "hub": self.served or None,
        }


@dataclass
class Headline:
    """One job's columns of the headline: the seed loop, the Polars one-liner and shardsql
    `--no-shuffle` as fresh processes, and shardsql's ratios against the other two."""

    job: str  # "main job", "small job"
    title: str  # the layout and the job
    contenders: list[Contender]  # seed loop, Polars one-liner, shardsql
    ratios: dict[str, tuple[Ratio, Ratio]]  # what is compared -> (wall time, CPU time)

    def record(self) -> dict:
        return {"job": self.job, "title": self.title, "contenders": {c.name: c.record() for c in self.contenders},
                "ratios": {label: {"wall": wall.record(), "cpu": cpu.record()}
                           for label, (wall, cpu) in self.ratios.items()}}  # fmt: skip


def render_headline(headlines: list[Headline], repeats: int) -> list[str]:
    """The headline table: a row a contender and a ratio, wall, CPU and peak RSS of each job side by side."""
    if not headlines:
        return []
    head = ["contender"] + [f"{h.job}: {what}" for h in headlines for what in ("wall", "CPU", "peak RSS")]
    lines = [
        "## What a user sees: each tool a fresh process, as its user starts it",
        "",
        '`python seed_loop.py`, `python -c "<the Polars one-liner>"`, the `shardsql convert --no-shuffle` command; '
        "wall time from the spawn to the exit; CPU time: user + system of the process tree; best (median) of "
        f"{repeats} interleaved runs after a warm-up round; every contender writes shardsql's codec and 1,024-row "
        "groups; peak RSS: the highest of the runs. " + "; ".join(f"{h.job}: {h.title}" for h in headlines) + ".",
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for index in range(len(headlines[0].contenders)):
        cells = [headlines[0].contenders[index].name]
        for h in headlines:
            c = h.contenders[index]
            rss = "" if c.peak_rss_mb is None else f"{c.peak_rss_mb:,.0f} MB"
            cells += [f"{c.best:.2f} s ({c.median:.2f})", f"{c.best_cpu:.2f} s ({c.median_cpu:.2f})", rss]
        lines.append("| " + " | ".join(cells) + " |")
    for index, label in enumerate(headlines[0].ratios):
        cells = [f"**{label}**"]
        for h in headlines:
            wall, cpu = list(h.ratios.values())[index]
            cells += [_ratio_cell(wall), _ratio_cell(cpu), ""]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _ratio_cell(ratio: Ratio) -> str:
    goal = f" (goal {ratio.goal_text}: {_met_text(ratio.met)})" if ratio.goal is not None else ""
    return f"**{ratio.text()}**{goal}"


def render(result: dict, sections: list[tuple[str, list[Row]]], headlines: list[Headline]) -> str:
    m = result["machine"]
    p = result["parameters"]
    lines = [
        "# shardsql benchmark",
        "",
        f"- Date: {result['date']}; shardsql at {m['shardsql_commit']}; the benchmark took "
        f"{result['wall_seconds']:.0f} s",
        f"- Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gb']} GB RAM, {m['platform']}; load average "
        f"{result['load_average']['before']} before, {result['load_average']['after']} after",
        f"- Python {m['python']}, polars {m['polars']}, duckdb {m['duckdb']}, pyarrow {m['pyarrow']}, "
        f"huggingface_hub {m['huggingface_hub']}",
        f"- Main job: `{p['dataset']}`, {p['num_shards']} training shards + 1 of {p['rows_per_shard']:,} rows, "
        f"1,024-row row groups, from {p['files']} files of {p['rows_per_file']:,} unique documents; each "
        "contender a fresh process (in-process library calls only in the sections labelled diagnostic); best "
        f"(median) of {p['repeats']} interleaved runs (wall and CPU each) after a warm-up round (which leaves "
        "Python's bytecode cached, as a user's first run does); warm page cache; the Hub stand-in runs in its "
        "own process",
        "",
    ]
    lines += render_headline(headlines, p["repeats"])
    number = 0
    for title, rows in sections:
        lines += [f"## {title}", "", "| # | measure | result | goal | met |", "| --- | --- | --- | --- | --- |"]
        for row in rows:
            number += 1
            lines.append(f"| {number} | {row.measure} | {row.figure} | {row.goal} | {row.met_text} |")
        lines.append("")
    missed = result["goals_missed"]
    lines += [f"Goals missed: {'; '.join(missed)}." if missed else "All goals met.", ""]
    return "\n".join(lines)
