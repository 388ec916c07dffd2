"""What decides a mined list (`MineSettings`, checked once) and what a run returns (`MineResult`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ssld_zoo.errors import MineError
from ssld_zoo.tools.mining.hashing import HASH_BITS

DEDUP_METHODS = ("phash", "features")
DEFAULT_THRESHOLDS = {"phash": 6.0, "features": 0.99}


@dataclass(frozen=True)
class MineSettings:
    """Everything that decides the mined list; a resumed run must have the same."""

    teacher: str
    pool: str
    exclude: str
    per_class: int
    teacher_weights: str | None = None
    pool_subset: str | None = None
    exclude_subset: str | None = None
    dedup: str = "phash"
    threshold: float | None = None  # None: DEFAULT_THRESHOLDS[dedup]
    min_score: float | None = None
    input_size: int | None = None
    batch_size: int = 256

    def checked(self) -> "MineSettings":
        """These settings with the default threshold filled in; a bad value raises MineError."""
        if self.dedup not in DEDUP_METHODS:
            raise MineError(f"--dedup must be one of {', '.join(DEDUP_METHODS)}, not '{self.dedup}'.")
        threshold = DEFAULT_THRESHOLDS[self.dedup] if self.threshold is None else float(self.threshold)
        if self.dedup == "phash" and not (threshold.is_integer() and 0 <= threshold < HASH_BITS):
            raise MineError(f"--threshold {self.threshold} is not a Hamming distance for --dedup phash: give an "
                            f"integer from 0 (identical hashes only) to {HASH_BITS - 1}; "
                            f"{DEFAULT_THRESHOLDS['phash']:g} is the default.")
        if self.dedup == "features" and not 0 < threshold <= 1:
            raise MineError(f"--threshold {self.threshold} is not a cosine similarity for --dedup features: give a "
                            f"number in (0, 1]; {DEFAULT_THRESHOLDS['features']} is the default.")
        if self.per_class < 1:
            raise MineError(f"--per-class must be at least 1, not {self.per_class}.")
        if self.min_score is not None and not 0 <= self.min_score <= 1:
            raise MineError(f"--min-score {self.min_score} must be a softmax probability in [0, 1].")
        if self.batch_size < 1 or (self.input_size is not None and self.input_size < 1):
            raise MineError("--batch-size and --input-size must be positive.")
        return MineSettings(**{**asdict(self), "threshold": threshold})


@dataclass
class MineResult:
    """The files written (`list_path` is None while `complete` is False) and the headline counts."""

    list_path: Path | None
    summary_path: Path | None
    plot_paths: list[Path]
    state_path: Path
    complete: bool
    processed: int
    pool_size: int
    selected: int = 0
    duplicates: int = 0
    undecodable: int = 0
