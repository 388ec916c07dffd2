"""Deprecated alias of `ssld_zoo.train.scoring`, which this module was renamed to (it read like `ssld-zoo eval`'s
`ssld_zoo.tools.evaluate`). Importing this module warns once; it will be removed in ssld_zoo 0.3.0.
"""
from __future__ import annotations

import warnings

from ssld_zoo.train.scoring import Logits, Scores, score

warnings.warn("ssld_zoo.train.evaluation is deprecated and will be removed in ssld_zoo 0.3.0: import "
              "ssld_zoo.train.scoring instead.", DeprecationWarning, stacklevel=2)

__all__ = ["Logits", "Scores", "score"]
