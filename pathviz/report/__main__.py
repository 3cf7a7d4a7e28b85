"""``python -m pathviz.report RUN [--out FILE.html] [--iteration stop|N] [--figures DIR]
[--force]``: a run's path as one HTML file that opens from disk, offline, and figures for a
paper.

    python -m pathviz.report checkpoints/demo --out demo.html
    python -m pathviz.report checkpoints/demo --figures figs --iteration 400

Without ``--out`` the report goes to ``RUN_NAME-report.html`` in the current folder; with only
``--figures`` no report is written. An existing file is replaced only with ``--force``. Exit
codes: 0, or 2 with one sentence (an unknown run, an unreadable path file, a folder that does
not exist, a file that exists).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pathviz.cli_parser import StrictParser
from pathviz.report import data, page
from pathviz.runs import write_bytes_atomic
from pathviz.tickets.points import chart_points

__all__ = ["main"]


class UsageError(Exception):
    """Bad input, in one sentence."""


class _Parser(StrictParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.explain(message)} (see --help)")


def _target(path: Path, force: bool, flag: str) -> Path:
    """``path`` if it may be written: its folder exists, and it does not or ``force``."""
    if not path.parent.is_dir():
        raise UsageError(f"{flag}'s folder {path.parent} does not exist; create it first or "
                         f"pick another")
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; name a file (e.g. {path / 'report.html'})")
    if path.exists() and not force:
        raise UsageError(f"{path} exists; pass --force to replace it, or pick another --out")
    return path


def _figures(view: object, index: int, run_dir: str, out: Path, force: bool) -> list[Path]:
    from pathviz.report import figures  # lazy: matplotlib loads only for --figures
    if out.exists() and not out.is_dir():
        raise UsageError(f"--figures {out} is a file; name a folder")
    if not out.exists():
        if not out.parent.is_dir():
            raise UsageError(f"--figures's parent folder {out.parent} does not exist; create it "
                             f"first")
        out.mkdir()
    names = [f"{n}.{ext}" for n in figures.NAMES for ext in ("svg", "png")]
    taken = [n for n in names if (out / n).exists()]
    if taken and not force:
        raise UsageError(f"{out} already holds {', '.join(taken)}; pass --force to replace them")
    written = []
    if view.data["layers"]:  # type: ignore[attr-defined]
        written += figures.write(figures.path_figure(view), out, "path")  # type: ignore[arg-type]
        written += figures.write(figures.overview_figure(view, index), out,  # type: ignore[arg-type]
                                 "overview")
    points, _ = chart_points(run_dir)
    stop = view.stop  # type: ignore[attr-defined]
    size = figures.size_figure(points, stop.iteration if stop is not None else None)
    if size is not None:
        written += figures.write(size, out, "size")
    return written


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    p = _Parser(prog="python -m pathviz.report", description=__doc__,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", metavar="RUN", help="the run folder, e.g. checkpoints/demo")
    p.add_argument("--out", default=None, help="the HTML file (default: RUN_NAME-report.html "
                                                "here)")
    p.add_argument("--iteration", default="stop",
                   help="where the report opens and the Overview figure's iteration: stop (the "
                        "suggested stop; the last snapshot without one) or an iteration")
    p.add_argument("--figures", default=None, metavar="DIR",
                   help="also write path, overview and size figures as SVG and 300 dpi PNG here")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    try:
        args = p.parse_args(argv)

        view = data.open_view(args.run_dir)
        index = data.start_index(view, args.iteration)
        out = None
        if args.out is not None or args.figures is None:
            out = _target(Path(args.out or f"{view.info.name}-report.html"), args.force, "--out")
        written: list[Path] = []
        if args.figures is not None:
            written += _figures(view, index, args.run_dir, Path(args.figures), args.force)
        if out is not None:
            r = data.build(args.run_dir, args.iteration)
            text = page.render(r, page.tickets_section(args.run_dir, r))
            write_bytes_atomic(out, text.encode())
            written.append(out)
    except (UsageError, data.ReportError) as e:
        print(f"pathviz.report: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pathviz.report: error: could not write {e.filename or 'a file'} "
              f"({e.strerror or e}); free space or pick another place", file=sys.stderr)
        return 2
    for f in written:
        print(f"wrote {f} ({f.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
