"""The resumable state of a mining run: per-class heaps, counts and position, in an .npz without pickle."""
from __future__ import annotations

import heapq
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssld_zoo.errors import MineError
from ssld_zoo.files import atomic_file
from ssld_zoo.reading import open_regular, parse_json, shorten

if TYPE_CHECKING:
    import numpy as np

SCORE_BINS = 1000
EXAMPLES = 20  # duplicate and undecodable examples kept
STATE_VERSION = 2  # 2: the pool fingerprint is `Images.fingerprint()`, the soft-label cache's


@dataclass
class MineState:
    """What a run has seen so far; everything needed to continue it exactly."""

    settings: dict[str, Any]
    pool_fingerprint: str
    num_classes: int
    processed: int = 0
    heaps: list[list[tuple[float, int]]] = field(default_factory=list)  # per class: (score, -pool index), min-heap
    predicted: list[int] = field(default_factory=list)  # candidates per predicted class
    histogram: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)  # candidate scores on [0, 1]
    duplicates: int = 0
    duplicate_examples: list[dict[str, Any]] = field(default_factory=list)
    undecodable: int = 0
    undecodable_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.heaps = self.heaps or [[] for _ in range(self.num_classes)]
        self.predicted = self.predicted or [0] * self.num_classes

    def offer(self, scores: "np.ndarray", classes: "np.ndarray", indices: "np.ndarray", per_class: int,
              min_score: float | None) -> None:
        """Count the candidates and keep each class's `per_class` best (higher score, then lower index, wins)."""
        import numpy as np
        self.predicted = (np.asarray(self.predicted) + np.bincount(classes, minlength=self.num_classes)).tolist()
        bins = np.minimum((scores * SCORE_BINS).astype(np.int64), SCORE_BINS - 1)
        self.histogram = (np.asarray(self.histogram) + np.bincount(bins, minlength=SCORE_BINS)).tolist()
        for score, cls, index in zip(scores.tolist(), classes.tolist(), indices.tolist()):
            if min_score is not None and score < min_score:
                continue
            heap, key = self.heaps[cls], (score, -index)
            if len(heap) < per_class:
                heapq.heappush(heap, key)
            elif key > heap[0]:
                heapq.heapreplace(heap, key)

    def save(self, path: Path) -> None:
        """Write the state atomically (npz, no pickle)."""
        import numpy as np
        flat = [(c, s, -i) for c, heap in enumerate(self.heaps) for s, i in heap]
        meta = {name: getattr(self, name) for name in ("settings", "pool_fingerprint", "num_classes", "processed",
                                                       "duplicates", "duplicate_examples", "undecodable",
                                                       "undecodable_examples", "seconds")}
        meta["version"] = STATE_VERSION
        savez_atomic(path, meta=np.array(json.dumps(meta)),
                      heap_class=np.array([c for c, _, _ in flat], dtype=np.int64),
                      heap_score=np.array([s for _, s, _ in flat], dtype=np.float64),
                      heap_index=np.array([i for _, _, i in flat], dtype=np.int64),
                      predicted=np.array(self.predicted, dtype=np.int64),
                      histogram=np.array(self.histogram, dtype=np.int64))

    @classmethod
    def load(cls, path: Path) -> "MineState":
        import numpy as np
        if path.is_file() and not zipfile.is_zipfile(path):  # np.load would take it for a pickle
            raise MineError(f"cannot read the mining state {path} (not an .npz archive: truncated or another file); "
                            "delete it and start over without --resume.")
        try:
            with open_regular(path, what="mining state", error=MineError) as f, np.load(f, allow_pickle=False) as z:
                meta = parse_json(str(z["meta"]), where=f"The mining state {path}", path=str(path), error=MineError)
                version = meta.pop("version", 1) if isinstance(meta, dict) else None
                if version != STATE_VERSION:
                    raise MineError(f"cannot resume the mining state {path}: it is version {version}, written by "
                                    f"another ssld_zoo, and this one reads version {STATE_VERSION}; delete it and "
                                    "start over without --resume.", path=str(path))
                state = cls(**meta, predicted=z["predicted"].tolist(), histogram=z["histogram"].tolist())
                for c, s, i in zip(z["heap_class"].tolist(), z["heap_score"].tolist(), z["heap_index"].tolist()):
                    state.heaps[c].append((s, -i))
        except MineError:
            raise
        except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile) as e:
            raise MineError(f"cannot read the mining state {path} ({shorten(str(e))}); delete it and start over "
                            "without --resume.", path=str(path)) from e
        for heap in state.heaps:
            heapq.heapify(heap)
        return state


def savez_atomic(path: Path, **arrays: Any) -> None:
    import numpy as np
    with atomic_file(path) as f:
        np.savez(f, **arrays)

