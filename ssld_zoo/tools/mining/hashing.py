"""The 64-bit DCT perceptual hash that finds near-duplicates of the evaluation images, and Hamming distances."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

HASH_BITS = 64


@lru_cache(maxsize=None)
def _dct_matrix(n: int) -> "np.ndarray":
    """The orthonormal DCT-II matrix of size n (rows: frequencies)."""
    import numpy as np
    k, x = np.arange(n)[:, None], np.arange(n)[None, :]
    matrix = np.sqrt(2 / n) * np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    matrix[0] /= np.sqrt(2)
    return matrix


def phash(image: "Image.Image") -> int:
    """64-bit perceptual hash: grey 32x32, 2-D DCT, the 8x8 lowest frequencies compared with their median."""
    import numpy as np
    from PIL import Image
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    dct = _dct_matrix(32)
    low = (dct @ grey @ dct.T)[:8, :8].ravel()
    return int.from_bytes(np.packbits(low > np.median(low)).tobytes(), "big")


def hamming(a: "np.ndarray", b: "np.ndarray") -> "np.ndarray":
    """Pairwise Hamming distances (len(a), len(b)) between two uint64 hash arrays."""
    import numpy as np
    xor = a[:, None] ^ b[None, :]
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(xor)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)
    return table[xor.view(np.uint8)].reshape(*xor.shape, 8).sum(-1, dtype=np.uint8)
