"""One self-contained HTML page per run (or per stage output).

:func:`write_report` reads what a run folder (or a single stage's output)
already holds, draws the figures, embeds every image as a base64 ``data:`` URI
and writes one static HTML file: no scripts, no fonts, stylesheets or images
fetched from anywhere, readable offline and attachable to an e-mail.

What it accepts (``kind``):

* ``run``: a ``hwnas run`` folder (``summary.json``, or any of its stage outputs);
* ``profile``: a ``.jsonl`` profile; ``predictor``: a ``.hwnas`` bundle;
* ``supernet``: a folder with ``supernet.json``; ``search``: a folder with
  ``config.json`` and ``evaluated.csv``; ``distill``: a folder with ``report.json``.

A partial run is reported with what exists, and the page names what is missing
or half-written (:attr:`Report.missing`, :attr:`Report.broken`).
"""

from hwnas.report.build import Report, build_report, detect_kind, write_report

__all__ = ["Report", "build_report", "detect_kind", "write_report"]
