"""Near-duplicates of the evaluation images: their fingerprints (perceptual hashes or the teacher's pooled features),
computed once and kept beside the run, and the nearest one to each pool image."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ssld_zoo.errors import MineError
from ssld_zoo.reading import open_regular
from ssld_zoo.tools.mining.hashing import HASH_BITS, hamming
from ssld_zoo.tools.mining.pool import batches
from ssld_zoo.tools.mining.settings import MineSettings
from ssld_zoo.tools.mining.state import savez_atomic
from ssld_zoo.tools.mining.teacher import Teacher

if TYPE_CHECKING:
    import numpy as np
    import torch

    from ssld_zoo.train.data import Images

_EVAL_CHUNK = 8192


class Excluder:
    """The evaluation set's fingerprints and the nearest one to each pool image."""

    def __init__(self, settings: MineSettings, hashes: "np.ndarray", features: "torch.Tensor | None",
                 indices: "np.ndarray") -> None:
        self.settings, self.hashes, self.features, self.indices = settings, hashes, features, indices

    def nearest(self, hashes: "np.ndarray", feats: "torch.Tensor | None") -> tuple["np.ndarray", "np.ndarray"]:
        """(evaluation index, distance or similarity) of the nearest evaluation image to each pool image."""
        import numpy as np
        if self.settings.dedup == "features":
            assert feats is not None and self.features is not None
            sims = feats @ self.features.to(feats.device).T
            similarity, closest = sims.max(1)
            return self.indices[closest.cpu().numpy()], similarity.double().cpu().numpy()
        best = np.full(len(hashes), HASH_BITS + 1, dtype=np.int64)
        arg = np.zeros(len(hashes), dtype=np.int64)
        for start in range(0, len(self.hashes), _EVAL_CHUNK):
            dist = hamming(hashes, self.hashes[start:start + _EVAL_CHUNK]).astype(np.int64)
            closer = dist.min(1) < best
            arg[closer] = dist.argmin(1)[closer] + start
            best = np.minimum(best, dist.min(1))
        return self.indices[arg], best.astype(np.float64)

    def is_duplicate(self, value: "np.ndarray") -> "np.ndarray":
        if self.settings.dedup == "features":
            return value >= self.settings.threshold
        return value <= self.settings.threshold

    def save(self, path: Path, signature: str) -> None:
        import numpy as np
        feats = self.features.cpu().numpy() if self.features is not None else np.zeros((0, 0), np.float32)
        savez_atomic(path, signature=np.array(signature), hashes=self.hashes, features=feats, indices=self.indices)

    @classmethod
    def load(cls, path: Path, signature: str, settings: MineSettings) -> "Excluder | None":
        import numpy as np
        import torch
        try:
            with open_regular(path, what="exclusion cache", error=MineError) as f, \
                    np.load(f, allow_pickle=False) as z:
                if str(z["signature"]) != signature:
                    return None
                feats = torch.from_numpy(z["features"]) if settings.dedup == "features" else None
                return cls(settings, z["hashes"], feats, z["indices"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # MineError included: recompute
            return None


def exclude_fingerprints(images: "Images", settings: MineSettings, teacher: Teacher, workers: int,
                          progress: Callable[..., Any]) -> Excluder:
    """The evaluation images' fingerprints: their perceptual hashes, or the teacher's pooled features."""
    import numpy as np
    import torch
    use_features = settings.dedup == "features"
    hashes, feats, indices = [], [], []
    loader = batches(images, 0, settings.batch_size, teacher.transform if use_features else None, not use_features,
                     workers, teacher.device.type == "cuda")
    for batch in progress(loader, f"exclude: {len(images)} images"):
        indices.append(batch.indices)
        if use_features:
            if batch.images is not None:
                batch_feats = teacher(batch.images)[2]
                assert batch_feats is not None
                feats.append(batch_feats.cpu())
        else:
            hashes.append(batch.hashes)
    indices_all = np.concatenate(indices) if indices else np.zeros(0, np.int64)
    if len(indices_all) == 0:
        raise MineError(f"--exclude '{settings.exclude}' has no image that can be decoded.")
    return Excluder(settings, np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
                    torch.cat(feats).to(teacher.device) if use_features else None, indices_all)

