"""A path you can hand to someone: one self-contained HTML report, and figures for a paper.

    python -m pathviz.report checkpoints/demo --out demo.html
    python -m pathviz.report checkpoints/demo --figures figs/

The report (:mod:`pathviz.report.page`) runs the app's own browser player (the modules of
``pathviz/ui/js/``, joined by :mod:`pathviz.ui.jsbundle`, with the vendored uPlot) over the
run's data embedded in the file, so it opens from disk, offline, with no request to any host.
The figures (:mod:`pathviz.report.figures`) are drawn with matplotlib as SVG and 300 dpi PNG.
Both are made from the run's data only; every text from the run folder is escaped.
"""
