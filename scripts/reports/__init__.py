"""What a run reports, for people and for CI.

    results.py   the checks, quarantine, splits and profile of a run, read back from the database
    write.py     the JSON report, then the HTML page, the index of runs and the JUnit XML
    html.py      the HTML report and the index of runs: Jinja2 templates (templates/, with the CSS)
                 rendered with autoescape from a view model (html_view.py; html_svg.py draws the
                 charts' geometry, html_format.py the numbers and times)
    junit.py     JUnit XML: one test case per check and per stage
    alerts.py    the webhook alert a failed (or warned) run posts
"""
