"""A self-contained HTML report of an explanation run: `OUT/report.html` plus its thumbnails in `OUT/report_files/`.

    from cams.report import report_for_run
    report_for_run("cams_out/")              # after `cams explain-folder ... --out cams_out/` or `cams explain`

The page needs no server and no network (it opens from `file://`; a Content-Security-Policy allows
only the page itself and its folder): each image with its predicted class, class name and
probability, and every method's overlay side by side; filtering by class, probability and file
name, sorting by probability or by any per-image score (`scores.csv`), a method selector, paging
(only one page of rows is in the page at a time, its thumbnails load lazily), and the run's settings
and versions. The HTML comes from a Jinja2 template (`templates/report.html.j2`) with plain CSS and JS.

- `cams.report.runs`: reads what `cams explain` and `cams explain-folder` wrote (`read_run`).
- `cams.report.thumbs`: the thumbnails, written to a temporary folder that replaces `report_files/`.
- `cams.report.page`: the page's data and the Jinja2 rendering.
- `cams.report.writer`: ownership (`check_report`) and `write_report` / `report_for_run`.
"""
from cams.report.page import Entry
from cams.report.runs import read_run
from cams.report.writer import REPORT, THUMBS, check_report, report_for_run, write_report

__all__ = ["Entry", "REPORT", "THUMBS", "check_report", "read_run", "report_for_run", "write_report"]
