"""The benchmark's table: one row a figure, with its goal and whether it was met, rendered
as markdown for bench/results/latest.md."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Row:
    measure: str
    figure: str
    goal: str = ""
    met: bool | None = None  # None: for information

    @property
    def met_text(self) -> str:
        return "" if self.met is None else ("yes" if self.met else "**NO**")


@dataclass
class Contender:
    name: str
    run: Callable[[Path], object]  # output folder in; its result out
    shards_in: Callable[[Path], Path]  # output folder -> the folder holding its shards
    hub: bool = False  # reads through the Hub stand-in
    latency_s: float = 0.0  # added by the stand-in to every request
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
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

    def record(self) -> dict:
        return {
            "seconds": [round(s, 3) for s in self.seconds],
            "cpu_seconds": [round(s, 3) for s in self.cpu],
            "best_seconds": round(self.best, 3),
            "best_cpu_seconds": round(self.best_cpu, 3),
            "same_as_seed": None if self.check is None else {"ok": self.check[0], "detail": self.check[1]},
            "output_bytes": self.layout["bytes"],
            "row_groups_all_1024": self.layout["row_groups_1024"],
            "hub": self.served or None,
        }


def render(result: dict, sections: list[tuple[str, list[Row]]]) -> str:
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
        f"1,024-row row groups, from {p['files']} files of {p['rows_per_file']:,} unique documents; best of "
        f"{p['repeats']} interleaved runs (wall and CPU each) after a warm-up round; warm page cache; the Hub "
        "stand-in runs in its own process",
        "",
    ]
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
