"""pathviz: see, scrub and cut the regularization path of DessiLBI (SLBI) training.

The package root imports nothing heavy, so that the app's reading and plotting modules load
without torch; import submodules (``pathviz.optim``, ``pathviz.store``, ...) directly.
"""

__version__ = "0.1.0"
