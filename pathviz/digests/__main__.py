"""``python -m pathviz.digests``: this machine's op digests, compared with the references."""

import sys

from pathviz.digests import main

sys.exit(main())
