"""``python -m pathviz.baselines``: see :mod:`pathviz.baselines.cli`."""

import sys

from pathviz.baselines.cli import main

sys.exit(main())
