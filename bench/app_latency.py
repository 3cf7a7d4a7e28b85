"""Server-side time to re-render the app after a slider move, on a 5000-snapshot path shaped like
cifar_vgg_16 (13 conv layers, 4224 filters). Prints medians measured in this one run:

    python bench/app_latency.py [--snapshots 5000] [--moves 15]

Target (issue 4): median <= 300 ms. Measured with Streamlit's AppTest (the script run, figure
building and serialisation; not the browser's drawing).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from path_io import synthetic_vgg_path  # noqa: E402

from pathviz import runs  # noqa: E402

APP = str(Path(__file__).parents[1] / "app.py")


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--snapshots", type=int, default=5000)
    ap.add_argument("--moves", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = runs.run_paths("vgg", root)
        paths.dir.mkdir()
        synthetic_vgg_path(paths.path, args.snapshots)
        paths.config.write_text(json.dumps({"model": "cifar_vgg_16", "dataset": "cifar10"}))
        runs.write_status(paths, state="finished", snapshots=args.snapshots)
        os.environ["PATHVIZ_CHECKPOINTS"] = str(root)
        from streamlit.testing.v1 import AppTest

        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["run"] = "vgg"
        t0 = time.perf_counter()
        at.run()
        print(f"first render: {1e3 * (time.perf_counter() - t0):.0f} ms")
        rng = np.random.default_rng(0)
        for view in ("Overview", "Layer"):
            at.get("button_group")[0].set_value(view).run()
            times = []
            for k in rng.integers(0, args.snapshots, args.moves).tolist():
                at.slider[0].set_value(int(k) * 20)  # the synthetic path: iteration = 20 * index
                t0 = time.perf_counter()
                at.run()
                times.append(time.perf_counter() - t0)
                assert not at.exception, at.exception
            print(f"{view:9} view, slider move: median {1e3 * statistics.median(times):.0f} ms, "
                  f"max {1e3 * max(times):.0f} ms over {args.moves} moves (target <= 300 ms)")


if __name__ == "__main__":
    main()
