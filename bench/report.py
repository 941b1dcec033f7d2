"""What a benchmark found, in one shape: rows of rustelixir beside a baseline measured in the
same run, printed as a text table, saved as JSON and drawn as a chart.

    python bench/report.py bench/results/node_bench.json   # redraw a chart from its JSON

Each benchmark builds a `Report` (sections of `Row`s) and calls `publish`: the tables go to
stdout, and `<results>/<bench>.json` and `<results>/<bench>.svg` are written, `<results>`
being `bench/results` for a full run and `bench/results/quick` for a `--quick` one (so a
smoke run never replaces the figures the README shows), or what `--results` says.

The chart has one panel per section and two bars per row: the baseline, drawn at 1, and
rustelixir, drawn at its ratio to the baseline (ratio = rustelixir / baseline, as in the
tables), so rows of different units share an axis. Each bar is labelled with its measured
value; rustelixir's also with the ratio, green where it meets the row's target and red where
it misses, and the target itself is a dashed mark on the row. Where the ratios span more
than a factor of 8 the axis is logarithmic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

RESULTS = Path(__file__).resolve().parent / "results"
OURS = "rustelixir"
LOG_SPREAD = 8.0  # max/min of the drawn values beyond which the axis is logarithmic

BASELINE_COLOUR = "#9e9e9e"
OURS_COLOUR = "#3b6ea8"
MEETS_COLOUR = "#2e7d32"
MISSES_COLOUR = "#c62828"


@dataclass(frozen=True)
class Row:
    """One figure, measured for rustelixir and for the baseline in the same run."""

    metric: str
    unit: str
    baseline: float | None  # None: the baseline cannot do it (`n/a`)
    ours: float
    higher_is_better: bool
    target: float | None = None  # ratio bound: a minimum if higher is better, else a maximum

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.ours / self.baseline

    @property
    def meets(self) -> bool | None:
        """Whether the ratio meets the target; None without a target or a ratio."""
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def bound(self) -> str:
        return "" if self.target is None else f"{'>=' if self.higher_is_better else '<='} {self.target:g}x"

    def verdict(self) -> str:
        if self.meets is None:
            return ""
        return f"{'meets' if self.meets else 'MISSES'} {self.bound()}"


class Samples:
    """What a benchmark measured round by round, by figure and side (rustelixir's, the
    baseline's); a row reports the medians over the rounds."""

    def __init__(self) -> None:
        self._values: dict[tuple[str, str], list[float]] = {}

    def add(self, figure: str, side: str, value: float) -> None:
        self._values.setdefault((figure, side), []).append(value)

    def median(self, figure: str, side: str) -> float:
        return statistics.median(self._values[(figure, side)])

    def row(self, figure: str, unit: str, higher_is_better: bool, target: float | None = None, *,
            baseline: str, ours: str, metric: str | None = None) -> Row:  # fmt: skip
        """The row of `figure`: the median of side `baseline` against that of side `ours`,
        named `metric` (default: the figure)."""
        return Row(metric or figure, unit, self.median(figure, baseline), self.median(figure, ours), higher_is_better, target)


@dataclass(frozen=True)
class Section:
    """Rows against one baseline: a table, and a panel of the chart."""

    title: str
    baseline: str  # what the baseline is, e.g. "BEAM gen_server"
    rows: list[Row]
    ours: str = OURS  # what the measured side is called, e.g. "TLS" against "plain TCP"


@dataclass(frozen=True)
class Report:
    bench: str  # the benchmark's file stem, e.g. "node_bench": names the result files
    title: str
    sections: list[Section]
    notes: list[str] = field(default_factory=list)
    quick: bool = False
    measured: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    cores: int = field(default_factory=lambda: os.cpu_count() or 0)

    # --- text ---------------------------------------------------------------------------

    def print_tables(self, out: TextIO = sys.stdout) -> None:
        for section in self.sections:
            print(file=out)
            print(_table(section), file=out)
        if self.notes:
            print(file=out)
            for note in self.notes:
                print(note, file=out)

    # --- JSON ---------------------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text)
        sections = [
            Section(s["title"], s["baseline"], [Row(**r) for r in s["rows"]], s.get("ours", OURS)) for s in data.pop("sections")
        ]
        return cls(sections=sections, **data)

    # --- files --------------------------------------------------------------------------

    def save(self, directory: Path) -> tuple[Path, Path]:
        """Writes `<bench>.json` and the chart `<bench>.svg` into `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        json_path, svg_path = directory / f"{self.bench}.json", directory / f"{self.bench}.svg"
        json_path.write_text(self.to_json())
        draw(self, svg_path)
        return json_path, svg_path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every benchmark takes: `--quick` and `--results`."""
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument(
        "--results", type=Path, default=None,
        help=f"where the JSON and the chart go (default: {RESULTS}, or {RESULTS / 'quick'} with --quick)",
    )  # fmt: skip


def results_dir(args: argparse.Namespace) -> Path:
    return args.results if args.results is not None else RESULTS / "quick" if args.quick else RESULTS


def publish(report: Report, args: argparse.Namespace, out: TextIO = sys.stdout, tables: bool = True) -> None:
    """Prints the report's tables (unless the benchmark prints its own) and saves its JSON and
    chart where `args` says."""
    if tables:
        report.print_tables(out)
    json_path, svg_path = report.save(results_dir(args))
    print(f"\nresults: {_shown(json_path)}, chart: {_shown(svg_path)}", file=out)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# --- numbers --------------------------------------------------------------------------------


def fmt_value(value: float) -> str:
    """A measured value as the tables print it: whole numbers from 100 up, else one or two
    decimals."""
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def fmt_compact(value: float) -> str:
    """A measured value short enough for a bar label: 12.3k, 4.56M."""
    for scale, suffix, from_ in ((1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
        if abs(value) >= from_:
            return f"{value / scale:.3g}{suffix}"
    return fmt_value(value)


def fmt_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "n/a"
    if ratio < 0.1:
        return f"{ratio:.2g}x"  # 0.0029x, not 0.00x
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.1f}x"


def _with_unit(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{fmt_value(value)} {unit}".rstrip()


def _table(section: Section) -> str:
    header = ["metric", section.baseline, section.ours, "ratio", "target"]
    lines = [[r.metric, _with_unit(r.baseline, r.unit), _with_unit(r.ours, r.unit), fmt_ratio(r.ratio), r.verdict()] for r in section.rows]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *middle, last = cells
        body = "  ".join(c.rjust(w) for c, w in zip(middle, widths[1:-1]))
        return f"{first.ljust(widths[0])}  {body}  {last}".rstrip()

    return "\n".join([f"{section.title}:", line(header), *(line(cells) for cells in lines)])


# --- the chart ------------------------------------------------------------------------------


def draw(report: Report, path: Path) -> None:
    """Writes the report's chart to `path` (SVG, or PNG by the suffix), text kept as text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": report.bench, "font.size": 9})
    heights = [len(s.rows) + 1.6 for s in report.sections]
    fig, axes = plt.subplots(
        len(report.sections), 1, squeeze=False, figsize=(10, 0.9 + 0.42 * sum(heights) + 0.18 * len(report.notes)),
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    try:
        for index, (ax, section) in enumerate(zip(axes[:, 0], report.sections)):
            _panel(ax, section, index)
        run = "quick run, " if report.quick else ""
        fig.suptitle(f"{report.title}\n({run}measured {report.measured}, {report.cores} cores)", fontsize=11)
        notes = "\n".join(textwrap.fill(n, 150) for n in report.notes)
        fig.tight_layout(rect=(0, 0.02 + 0.018 * notes.count("\n") + (0.02 if notes else 0), 1, 1))
        if notes:
            fig.text(0.01, 0.01, notes, fontsize=7, color="#555555", va="bottom")
        metadata: dict[str, Any] = {"Date": None} if path.suffix == ".svg" else {}
        fig.savefig(path, metadata=metadata)
    finally:
        plt.close(fig)


def _panel(ax: Any, section: Section, index: int) -> None:
    drawn = [r for r in section.rows if r.ratio is not None]
    values = [1.0, *(r.ratio for r in drawn if r.ratio is not None), *(r.target for r in drawn if r.target is not None)]
    log = max(values) / min(values) > LOG_SPREAD
    if log:
        ax.set_xscale("log")
        left, right = min(values) / 1.6, max(values) * 10.0
    else:
        left, right = 0.0, max(values) * 1.7
    ax.set_xlim(left, right)
    ax.set_ylim(len(section.rows) - 0.4, -0.6)
    ax.axvline(1.0, color="#bdbdbd", linewidth=0.8, zorder=0)
    for y, row in enumerate(section.rows):
        if row.ratio is None:
            ax.text(left if log else 0, y, f"  {_with_unit(row.ours, row.unit)}; {section.baseline}: n/a", va="center", fontsize=8)
            continue
        base = ax.barh(y - 0.19, 1.0 - left, left=left, height=0.36, color=BASELINE_COLOUR)[0]
        ours = ax.barh(y + 0.19, row.ratio - left, left=left, height=0.36, color=OURS_COLOUR)[0]
        base.set_gid(f"bar-{index}-{y}-baseline")
        ours.set_gid(f"bar-{index}-{y}-ours")
        assert row.baseline is not None
        ax.text(1.0, y - 0.19, f" {fmt_compact(row.baseline)} {row.unit}", va="center", fontsize=7.5, color="#424242")
        colour = {True: MEETS_COLOUR, False: MISSES_COLOUR, None: "black"}[row.meets]
        target = "" if row.target is None else f"  (target {row.bound()})"
        label = ax.text(row.ratio, y + 0.19, f" {fmt_compact(row.ours)} {row.unit}  {fmt_ratio(row.ratio)}{target}",
                        va="center", fontsize=8, color=colour, fontweight="bold", zorder=4,
                        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})  # fmt: skip
        label.set_gid(f"ratio-{index}-{y}")
        if row.target is not None:
            mark = ax.plot([row.target, row.target], [y - 0.42, y + 0.42], color=colour, linestyle=(0, (2, 1.5)), linewidth=1.2)
            mark[0].set_gid(f"target-{index}-{y}")
    directions = {r.higher_is_better for r in section.rows}
    ax.set_yticks(range(len(section.rows)))
    if len(directions) == 1:
        ax.set_yticklabels([r.metric for r in section.rows], fontsize=8)
        better = f"; {'higher' if directions.pop() else 'lower'} is better"
    else:
        ax.set_yticklabels([f"{r.metric}\n({'higher' if r.higher_is_better else 'lower'} is better)" for r in section.rows], fontsize=8)
        better = ""
    scale = " (log scale)" if log else ""
    ax.set_xlabel(f"ratio: {section.ours} (blue) / {section.baseline} (grey){scale}{better}", fontsize=8, loc="left")
    ax.set_title(section.title, loc="left", fontsize=10, fontweight="bold")
    ax.xaxis.set_major_formatter(_ratio_formatter())
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _ratio_formatter() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{x:g}x" if x > 0 and math.isfinite(x) else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Redraw a benchmark's chart from its saved JSON.")
    parser.add_argument("json", type=Path, nargs="+", help="bench/results/<bench>.json")
    for path in parser.parse_args(argv).json:
        report = Report.from_json(path.read_text())
        draw(report, path.with_suffix(".svg"))
        print(path.with_suffix(".svg"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
