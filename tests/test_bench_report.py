"""docs/PERFORMANCE.md is bench/run.py's report, which ends with bench/ANALYSIS.md as written
(`render_markdown`). The analysis is edited between bench runs; an edit made to one file and not
the other would leave two versions of it until the next `make bench`, so the two are compared here.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_report_ends_with_the_analysis_as_written():
    report = (REPO / "docs" / "PERFORMANCE.md").read_text(encoding="utf-8")
    analysis = (REPO / "bench" / "ANALYSIS.md").read_text(encoding="utf-8").rstrip()
    assert analysis.startswith("## ")  # the file is there and has its heading: the check below cannot pass empty
    assert report.endswith("\n\n" + analysis + "\n"), (
        "docs/PERFORMANCE.md does not end with bench/ANALYSIS.md: copy the edit to the other file, or run make bench")
