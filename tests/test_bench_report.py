"""The benchmarks' reports (bench/report.py): the rows' ratios and verdicts, the text tables,
the JSON, and the chart, read back from the SVG it writes: each bar's length, each label,
each target mark. And one benchmark run end to end (`--quick`), its table, JSON and chart
agreeing."""

from __future__ import annotations

import argparse
import io
import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from report import MEETS_COLOUR, MISSES_COLOUR, RESULTS, Report, Row, Samples, Section, fmt_ratio, results_dir  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"


def sample() -> Report:
    return Report(
        "sample_bench",
        "A sample",
        [
            Section("linear", "BEAM gen_server", [
                Row("p50", "us", 40.0, 30.0, False, 0.9),         # 0.75x: meets
                Row("calls/s x64", "/s", 80_000, 96_000, True, 1.3),  # 1.2x: misses
                Row("p99", "us", 50.0, 100.0, False),             # 2x, no target
            ]),
            Section("logarithmic", "erlang_py", [
                Row("maps", "ops/s", 1_000, 40_000, True, 20.0),  # 40x
                Row("ints", "ops/s", 1_000, 5_000, True, 20.0),   # 5x: misses
                Row("bignum", "ops/s", None, 7_000, True, 20.0),  # erlang_py cannot
            ], ours="our codec"),
        ],
        ["2 rounds, medians."],
        quick=True,
    )  # fmt: skip


def test_rows_ratio_and_verdict_follow_the_direction_of_better() -> None:
    lower = Row("p50", "us", 40.0, 30.0, False, 0.9)
    assert lower.ratio == pytest.approx(0.75) and lower.meets is True and lower.verdict() == "meets <= 0.9x"
    assert Row("p50", "us", 40.0, 38.0, False, 0.9).verdict() == "MISSES <= 0.9x"
    higher = Row("calls/s", "/s", 100.0, 120.0, True, 1.3)
    assert higher.meets is False and higher.verdict() == "MISSES >= 1.3x"
    assert Row("calls/s", "/s", 100.0, 130.0, True, 1.3).meets is True  # the bound itself meets
    assert Row("p99", "us", 40.0, 30.0, False).verdict() == "" and Row("p99", "us", 40.0, 30.0, False).meets is None
    assert [fmt_ratio(r) for r in (0.00291, 0.0466, 0.5, 12.34, None)] == ["0.0029x", "0.047x", "0.50x", "12.3x", "n/a"]
    missing = Row("bignum", "ops/s", None, 7.0, True, 20.0)
    assert missing.ratio is None and missing.meets is None and missing.verdict() == ""


def test_samples_report_the_median_of_each_side_over_the_rounds() -> None:
    samples = Samples()
    for base, ours in ((40.0, 31.0), (90.0, 29.0), (41.0, 80.0)):  # one slow round on each side
        samples.add("p50", "Base", base)
        samples.add("p50", "Ours", ours)
    assert samples.median("p50", "Base") == 41.0
    row = samples.row("p50", "us", False, 0.9, baseline="Base", ours="Ours", metric="add p50")
    assert row == Row("add p50", "us", 41.0, 31.0, False, 0.9)
    with pytest.raises(KeyError):
        samples.median("p50", "Other")


def test_json_round_trips() -> None:
    report = sample()
    assert Report.from_json(report.to_json()) == report


def test_tables_print_each_row_with_its_ratio_and_verdict() -> None:
    out = io.StringIO()
    sample().print_tables(out)
    lines = out.getvalue().splitlines()
    assert "linear:" in lines and "logarithmic:" in lines
    header = next(line for line in lines if line.startswith("metric") and "BEAM gen_server" in line)
    assert header.split() == ["metric", "BEAM", "gen_server", "rustelixir", "ratio", "target"]
    row = {line.split()[0]: line for line in lines if line and line.split()[0] in ("p50", "calls/s", "p99", "bignum")}
    assert row["p50"].split() == ["p50", "40.0", "us", "30.0", "us", "0.75x", "meets", "<=", "0.9x"]
    assert row["calls/s"].split()[-4:] == ["1.20x", "MISSES", ">=", "1.3x"] and "96,000 /s" in row["calls/s"]
    assert row["p99"].split()[-1] == "2.00x"
    assert row["bignum"].split() == ["bignum", "n/a", "7,000", "ops/s", "n/a"]
    # The columns line up: every ratio ends where the header's "ratio" does.
    end = header.index("ratio") + len("ratio")
    assert all(line[end - 1] == "x" for line in (row["p50"], row["calls/s"], row["p99"]))
    assert lines[-1] == "2 rounds, medians."


def _bar(root: ET.Element, gid: str) -> tuple[float, float]:
    """The left and right x of the bar drawn with gid `gid`, from its SVG path."""
    group = root.find(f".//{SVG}g[@id='{gid}']")
    assert group is not None, f"no bar {gid}"
    path = group.find(f"{SVG}path")
    assert path is not None
    xs = [float(x) for x in re.findall(r"[ML] ([-\d.]+) [-\d.]+", path.attrib["d"])]
    return min(xs), max(xs)


def _text(root: ET.Element, gid: str) -> tuple[str, str]:
    """The text and the style of the label drawn with gid `gid`."""
    group = root.find(f".//{SVG}g[@id='{gid}']")
    assert group is not None, f"no label {gid}"
    text = group.find(f".//{SVG}text")
    assert text is not None
    return "".join(text.itertext()), text.attrib.get("style", "")


def test_chart_draws_each_row_beside_its_baseline_with_the_ratio_marked(tmp_path: Path) -> None:
    report = sample()
    json_path, svg_path = report.save(tmp_path)
    assert Report.from_json(json_path.read_text()) == report
    root = ET.parse(svg_path).getroot()
    texts = {"".join(t.itertext()) for t in root.iter(f"{SVG}text")}
    assert {"linear", "logarithmic", "p50", "calls/s x64", "maps", "bignum"} <= texts  # titles, row names, as text
    assert any("quick run" in t for t in texts) and "2 rounds, medians." in texts

    # Linear panel: the baseline drawn at 1, ours at its ratio, both from the same origin.
    for y, row in enumerate(report.sections[0].rows):
        base_left, base_right = _bar(root, f"bar-0-{y}-baseline")
        ours_left, ours_right = _bar(root, f"bar-0-{y}-ours")
        assert base_left == pytest.approx(ours_left)
        assert (ours_right - ours_left) / (base_right - base_left) == pytest.approx(row.ratio, rel=1e-3)

    # Logarithmic panel (40x): distances from the baseline's end go as the logs of the ratios.
    base_end = _bar(root, "bar-1-0-baseline")[1]
    maps_end, ints_end = _bar(root, "bar-1-0-ours")[1], _bar(root, "bar-1-1-ours")[1]
    assert (maps_end - base_end) / (ints_end - base_end) == pytest.approx(math.log(40) / math.log(5), rel=1e-3)
    assert root.find(f".//{SVG}g[@id='bar-1-2-ours']") is None  # no ratio, no bar: the row says n/a
    assert any("7,000 ops/s; erlang_py: n/a" in t for t in texts)

    # Labels: value, ratio and target, green where the target is met, red where missed.
    text, style = _text(root, "ratio-0-0")
    assert text.split() == ["30.0", "us", "0.75x", "(target", "<=", "0.9x)"] and MEETS_COLOUR in style
    text, style = _text(root, "ratio-0-1")
    assert text.split() == ["96k", "/s", "1.20x", "(target", ">=", "1.3x)"] and MISSES_COLOUR in style
    text, style = _text(root, "ratio-0-2")
    assert text.split() == ["100", "us", "2.00x"] and MEETS_COLOUR not in style and MISSES_COLOUR not in style
    assert _text(root, "ratio-1-0")[0].split()[:3] == ["40k", "ops/s", "40.0x"]

    # Target marks: at the target's ratio on the axis; none on a row without a target.
    origin, one = _bar(root, "bar-0-0-baseline")
    mark = root.find(f".//{SVG}g[@id='target-0-0']")
    assert mark is not None
    mark_x = {float(x) for x in re.findall(r"[ML] ([-\d.]+) [-\d.]+", mark.find(f"{SVG}path").attrib["d"])}  # type: ignore[union-attr]
    assert len(mark_x) == 1 and (mark_x.pop() - origin) / (one - origin) == pytest.approx(0.9, rel=1e-3)
    assert root.find(f".//{SVG}g[@id='target-0-2']") is None


def test_a_chart_is_the_same_bytes_when_drawn_twice(tmp_path: Path) -> None:
    """No date or random ids inside the SVG beyond the report's own: a rerun with the same
    figures changes nothing in git."""
    report = sample()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = report.save(tmp_path / "a")[1].read_bytes()
    assert report.save(tmp_path / "b")[1].read_bytes() == first


def test_quick_runs_never_replace_the_published_results() -> None:
    assert results_dir(argparse.Namespace(quick=False, results=None)) == RESULTS
    assert results_dir(argparse.Namespace(quick=True, results=None)) == RESULTS / "quick"
    assert results_dir(argparse.Namespace(quick=True, results=Path("/x"))) == Path("/x")


@pytest.mark.beam
def test_a_benchmark_prints_saves_and_draws_the_same_figures(tmp_path: Path) -> None:
    """bench/metrics_bench.py --quick against real nodes: the ratios it prints are the JSON's,
    and the chart shows them."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "metrics_bench.py"), "--quick", "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = Report.from_json((tmp_path / "metrics_bench.json").read_text())
    assert report.bench == "metrics_bench" and report.quick
    rows = report.sections[0].rows
    assert [r.metric for r in rows] == ["p50", "calls/s x64"]
    assert all(r.baseline and r.baseline > 0 and r.ours > 0 for r in rows)
    printed = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()[:1] in (["p50"], ["calls/s"])}
    for row in rows:
        assert f"{row.ratio:.2f}x" in printed[row.metric.split()[0]]
    root = ET.parse(tmp_path / "metrics_bench.svg").getroot()
    assert _text(root, "ratio-0-0")[0].split()[2] == f"{rows[0].ratio:.2f}x"
    assert f"chart: {tmp_path / 'metrics_bench.svg'}" in result.stdout
