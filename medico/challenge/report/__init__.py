"""The organiser's report after close (``medico challenge report``): the design, the final ranking and how far to
trust it (bootstrap rank intervals, Kendall's tau, pairwise tests, other ranking methods), as one self-contained HTML
page with figures or as JSON with the same numbers. Never served: the organiser writes it and decides what to publish.
"""

from __future__ import annotations

import json
from typing import Literal

from medico.challenge.report.analysis import Report, analyse

__all__ = ["FORMATS", "Format", "Report", "analyse", "report_text"]

Format = Literal["html", "json"]
FORMATS: tuple[Format, ...] = ("html", "json")


def report_text(report: Report, fmt: Format) -> str:
    """``report`` as an HTML page (matplotlib draws its figures: loaded only here) or as JSON."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    if fmt == "html":
        from medico.challenge.report.page import report_html

        return report_html(report)
    raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
