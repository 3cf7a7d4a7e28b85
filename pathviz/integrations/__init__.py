"""Optional integrations: Hugging Face ``transformers``, Lightning and TensorBoard.

Each lives in its own module and imports its library only when used, so ``import pathviz``
never needs them; a missing library is named in one sentence with the extra that installs it
(``pip install "pathviz[hf]"``, ``[lightning]``, ``[tensorboard]``).

- :mod:`pathviz.integrations.layouts`: head and MLP-neuron groups of the common transformer
  layouts (BERT/RoBERTa, ViT, GPT-2, Llama/Mistral/Qwen with grouped-query attention);
- :mod:`pathviz.integrations.hf`: a ``transformers.Trainer`` callback, an SLBI optimizer
  factory and the compact export that stays a ``transformers`` model;
- :mod:`pathviz.integrations.lightning`: a Lightning ``Callback``;
- :mod:`pathviz.integrations.tensorboard`: the path's scalars as TensorBoard events.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional library is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` with one sentence naming the
    ``pathviz[extra]`` to install for ``feature``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"{feature} needs the {module.split('.')[0]} package, which is "
                                f"not installed; install it with pip install "
                                f"\"pathviz[{extra}]\"") from None
