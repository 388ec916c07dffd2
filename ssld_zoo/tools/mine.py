"""`ssld-zoo mine`: choose the unlabeled images a teacher is most confident about — SSLD's data-mining step.

SSLD removed near-duplicates of the evaluation set from ImageNet-22k, scored the rest with a teacher and kept the top-k
most confident images per class. `mine()` does the same for any pool: it streams the pool through the teacher (its
own eval preprocessing), drops images that are near-duplicates of the evaluation images (a 64-bit DCT perceptual hash
or the cosine similarity of the teacher's pooled features), keeps a top-K heap per predicted class, and writes

    LIST                  one entry per line (absolute path, or `cifar10:SPLIT/INDEX`), `#` header: `list:LIST`
    STEM.summary.json     counts per class, score quantiles, duplicates dropped (with example pairs), undecodable
    STEM.scores.png       score histogram and per-class counts (with matplotlib)
    STEM.duplicates.png   example duplicate pairs, pool image above its evaluation image (with matplotlib)

While it runs it keeps `STEM.state.npz` (heaps, counts, position; rewritten atomically every few batches) and
`STEM.exclude.npz` (the evaluation fingerprints, computed once); `resume=True` continues from them and gives the same
list as an uninterrupted run. Both are deleted when the list is written.
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import os
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, cast

from ssld_zoo.errors import MineError
from ssld_zoo.files import atomic_path

if TYPE_CHECKING:
    import numpy as np
    import torch
    from PIL import Image

    from ssld_zoo.train.data import Images

DEDUP_METHODS = ("phash", "features")
DEFAULT_THRESHOLDS = {"phash": 6.0, "features": 0.99}
HASH_BITS = 64
SCORE_BINS = 1000
QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
EXAMPLES = 20
_EVAL_CHUNK = 8192




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


# --- perceptual hash ---------------------------------------------------------------------------------------------

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


# --- pool and evaluation images ----------------------------------------------------------------------------------

def _source(spec: str, subset: str | None, option: str) -> Any:
    from ssld_zoo.train.recipe import SOURCE_KINDS, DataSource
    kind = spec.split(":", 1)[0]
    if kind in SOURCE_KINDS and ":" in spec:
        if kind == "cifar10" and spec not in ("cifar10:train", "cifar10:test"):
            raise MineError(f"{option} '{spec}' must be cifar10:train or cifar10:test.")
        return DataSource(spec, subset=subset)
    path = Path(spec).expanduser()
    if path.is_dir():
        return DataSource(f"folder:{spec}", subset=subset)
    if path.is_file():
        return DataSource(f"list:{spec}", subset=subset)
    raise MineError(f"{option} '{spec}' is neither a folder of images, a list file, nor cifar10:train / cifar10:test.")


def open_images(spec: str, subset: str | None, data_root: str | os.PathLike | None, option: str) -> "Images":
    """The images of `--pool` / `--exclude`: a folder (recursive), a list file, or a CIFAR-10 pack, with `subset`."""
    from ssld_zoo.data.subsets import SUBSET_FORMS, parse_subset
    from ssld_zoo.train.data import open_source
    if subset is not None and parse_subset(subset) is None:
        raise MineError(f"{option}-subset '{subset}' must be {SUBSET_FORMS}.")
    return open_source(_source(spec, subset, option), data_root)


def entry(images: "Images", i: int) -> str:
    """The list-file entry of image `i`: its absolute path, or `cifar10:SPLIT/INDEX` for a CIFAR-10 pack image."""
    from ssld_zoo.train.data import Cifar, Files, Listed, Selection
    while isinstance(images, Selection):
        i = int(images.indices[i])
        images = images.base
    if isinstance(images, Cifar):
        return f"cifar10:{images.pack.split}/{i}"
    if isinstance(images, Files):
        return os.path.abspath(images.paths[i])
    if isinstance(images, Listed):
        item = images.entries[i]
        return os.path.abspath(item) if isinstance(item, str) else f"cifar10:{item[0]}/{item[1]}"
    raise TypeError(f"no list entry for {type(images).__name__}")


def fingerprint(images: "Images") -> str:
    """sha256 of every entry in order: a resumed run must see the same images."""
    digest = hashlib.sha256()
    for i in range(len(images)):
        digest.update(entry(images, i).encode() + b"\n")
    return digest.hexdigest()


# --- streaming through the teacher -------------------------------------------------------------------------------

class _Decoded:
    """A map-style dataset: image i as (i, teacher input uint8 CHW or None, phash or 0, decoded?)."""

    def __init__(self, images: "Images", transform: Any, with_hash: bool) -> None:
        self.images, self.transform, self.with_hash = images, transform, with_hash

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[int, Any, int, bool]:
        from ssld_zoo.train.data import DECODE_ERRORS
        try:
            im = self.images.image(i)
        except DECODE_ERRORS:
            return i, None, 0, False
        return i, self.transform(im, None) if self.transform else None, phash(im) if self.with_hash else 0, True


@dataclass
class _Batch:
    indices: "np.ndarray"  # decoded images
    images: "torch.Tensor | None"  # uint8 (n, 3, s, s) when the teacher runs
    hashes: "np.ndarray"  # uint64 (n,)
    failed: list[int]  # indices that could not be decoded


def _collate(items: list[tuple[int, Any, int, bool]]) -> _Batch:
    import numpy as np
    import torch
    good = [item for item in items if item[3]]
    images = torch.stack([im for _, im, _, _ in good]) if good and good[0][1] is not None else None
    return _Batch(np.array([i for i, *_ in good], dtype=np.int64), images,
                  np.array([h for _, _, h, _ in good], dtype=np.uint64), [i for i, *_, ok in items if not ok])


class _Ranges:
    """Consecutive batches of indices `start..n`, never materialised all at once."""

    def __init__(self, start: int, n: int, batch: int) -> None:
        self.start, self.n, self.batch = start, n, batch

    def __len__(self) -> int:
        return max(0, -(-(self.n - self.start) // self.batch))

    def __iter__(self) -> Iterator[list[int]]:
        for s in range(self.start, self.n, self.batch):
            yield list(range(s, min(s + self.batch, self.n)))


def _batches(images: "Images", start: int, settings: MineSettings, transform: Any, with_hash: bool, workers: int,
             pin_memory: bool) -> Any:
    import torch
    dataset = cast("torch.utils.data.Dataset[Any]", _Decoded(images, transform, with_hash))  # map-style, duck-typed
    return torch.utils.data.DataLoader(dataset,
                                       batch_sampler=_Ranges(start, len(images), settings.batch_size),
                                       num_workers=workers, collate_fn=_collate, pin_memory=pin_memory)


class _TimmClassifier(Protocol):
    """The timm classifier interface that the teacher uses."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...
    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...


class Teacher:
    """The frozen teacher in eval mode with its own preprocessing: uint8 images -> (top score, top class, features)."""

    def __init__(self, settings: MineSettings, data_root: str | os.PathLike | None, device: str) -> None:
        from ssld_zoo.train.data import RESAMPLE, Transform
        from ssld_zoo.train.models import build_model, normalized
        from ssld_zoo.train.recipe import Augment, ModelSpec
        spec = ModelSpec(model=settings.teacher, pretrained=settings.teacher_weights or True)
        model = build_model(spec, "teacher", data_root).model.eval().requires_grad_(False)
        cfg = getattr(model, "pretrained_cfg", None) or {}
        interpolation = cfg.get("interpolation") or "bilinear"
        if interpolation not in RESAMPLE:
            raise MineError(f"teacher '{settings.teacher}' asks for {interpolation} resizing; only "
                            f"{', '.join(RESAMPLE)} are supported.")
        self.size = settings.input_size or int((cfg.get("input_size") or (3, 224, 224))[-1])
        self.transform = Transform(self.size, Augment(interpolation=interpolation,
                                                      eval_crop_pct=float(cfg.get("crop_pct") or 1.0)), train=False)
        self.net = normalized(model).to(device)
        self.device, self.features = device, settings.dedup == "features"
        if self.features and not hasattr(model, "forward_head"):
            raise MineError(f"teacher '{settings.teacher}' has no timm forward_head(); use --dedup phash.")

    def __call__(self, images: "torch.Tensor") -> tuple["np.ndarray", "np.ndarray", "torch.Tensor | None"]:
        """Softmax confidence and index of the top class (numpy), and L2-normalised pre-logits (or None)."""
        import torch
        with torch.inference_mode():
            x = images.to(self.device, non_blocking=True).float().div_(255)
            x = (x - self.net.get_buffer("mean")) / self.net.get_buffer("std")
            model = cast(_TimmClassifier, self.net.model)
            if self.features:
                pooled = model.forward_features(x)
                logits = model.forward_head(pooled)
                feats = torch.nn.functional.normalize(model.forward_head(pooled, pre_logits=True).flatten(1), dim=1)
            else:
                logits, feats = model(x), None
            score, cls = logits.double().softmax(-1).max(-1)  # float64: confident scores do not all round to 1
        return score.cpu().numpy(), cls.cpu().numpy(), feats


# --- state -------------------------------------------------------------------------------------------------------

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
        _savez_atomic(path, meta=np.array(json.dumps(meta)),
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
            with np.load(path, allow_pickle=False) as z:
                state = cls(**json.loads(str(z["meta"])), predicted=z["predicted"].tolist(),
                            histogram=z["histogram"].tolist())
                for c, s, i in zip(z["heap_class"].tolist(), z["heap_score"].tolist(), z["heap_index"].tolist()):
                    state.heaps[c].append((s, -i))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as e:
            raise MineError(f"cannot read the mining state {path} ({e}); delete it and start over without "
                            "--resume.") from None
        for heap in state.heaps:
            heapq.heapify(heap)
        return state


def _savez_atomic(path: Path, **arrays: Any) -> None:
    import numpy as np
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _settings_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    return [f"{k}: {saved.get(k)!r} then, {now.get(k)!r} now" for k in sorted(set(saved) | set(now))
            if saved.get(k) != now.get(k)]


# --- duplicates of the evaluation set ----------------------------------------------------------------------------

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
        _savez_atomic(path, signature=np.array(signature), hashes=self.hashes, features=feats, indices=self.indices)

    @classmethod
    def load(cls, path: Path, signature: str, settings: MineSettings) -> "Excluder | None":
        import numpy as np
        import torch
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["signature"]) != signature:
                    return None
                feats = torch.from_numpy(z["features"]) if settings.dedup == "features" else None
                return cls(settings, z["hashes"], feats, z["indices"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None


def _exclude_fingerprints(images: "Images", settings: MineSettings, teacher: Teacher, workers: int,
                          progress: Callable[..., Any]) -> Excluder:
    import numpy as np
    import torch
    use_features = settings.dedup == "features"
    hashes, feats, indices = [], [], []
    loader = _batches(images, 0, settings, teacher.transform if use_features else None, not use_features, workers,
                      teacher.device.startswith("cuda"))
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


# --- the run -----------------------------------------------------------------------------------------------------

def output_paths(out: Path) -> dict[str, Path]:
    """The files a run writes next to its list `out`."""
    stem = out.parent / out.stem
    return {"summary": Path(f"{stem}.summary.json"), "scores": Path(f"{stem}.scores.png"),
            "duplicates": Path(f"{stem}.duplicates.png"), "state": Path(f"{stem}.state.npz"),
            "exclude": Path(f"{stem}.exclude.npz")}


def _progress_bar(enabled: bool) -> Callable[[Any, str], Any]:
    """`wrap(loader, desc)`: the loader with a tqdm bar over its batches, or unchanged when not `enabled`."""
    from tqdm import tqdm

    def wrap(loader: Any, desc: str) -> Any:
        return tqdm(loader, total=len(loader), desc=desc, unit="batch", disable=not enabled, dynamic_ncols=True)
    return wrap


def _log(message: str) -> None:
    print(f"[ssld-zoo mine] {message}", file=sys.stderr, flush=True)


def _default_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def mine(settings: MineSettings, out: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
         device: str | None = None, workers: int = 2, resume: bool = False, state_every: int = 50,
         max_batches: int | None = None, progress: bool | None = None) -> MineResult:
    """Mine the pool as `settings` say into the list file `out` (see the module docstring for the files).

    `resume=True` continues an interrupted run from its state file (same settings and pool, else MineError);
    `state_every` batches between state saves; `max_batches` stops this call after that many batches with the state
    saved (`complete=False`); `progress` shows a tqdm bar (default: when stderr is a terminal).
    """
    settings = settings.checked()
    out = Path(out).expanduser()
    paths = output_paths(out)
    if paths["state"].exists() != resume:
        if resume:
            raise MineError(f"nothing to resume: {paths['state']} does not exist; run without --resume.")
        raise MineError(f"{paths['state']} holds an interrupted run; pass --resume to continue it, or delete it to "
                        "start over.")
    if state_every < 1 or (max_batches is not None and max_batches < 1):
        raise MineError("state_every and max_batches must be positive.")
    saved = MineState.load(paths["state"]) if resume else None
    now = asdict(settings)
    if saved is not None and saved.settings != now:
        raise MineError(f"cannot resume {paths['state']}: it was written with other settings "
                        f"({'; '.join(_settings_changes(saved.settings, now))}). Rerun with the same settings, or "
                        "delete the state file to start over.")
    pool = open_images(settings.pool, settings.pool_subset, data_root, "--pool")
    pool_print = fingerprint(pool)
    if saved is not None and saved.pool_fingerprint != pool_print:
        raise MineError(f"cannot resume {paths['state']}: the pool '{settings.pool}' holds other images now "
                        f"({len(pool)}); restore it or delete the state file to start over.")
    exclude = open_images(settings.exclude, settings.exclude_subset, data_root, "--exclude")
    out.parent.mkdir(parents=True, exist_ok=True)
    device = device or _default_device()
    teacher = Teacher(settings, data_root, device)
    from ssld_zoo.train.models import num_classes
    state = saved or MineState(now, pool_print, num_classes(teacher.net.model))
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress_bar(show)
    signature = hashlib.sha256(json.dumps([now, fingerprint(exclude)]).encode()).hexdigest()
    excluder = Excluder.load(paths["exclude"], signature, settings) if resume else None
    if excluder is None:
        excluder = _exclude_fingerprints(exclude, settings, teacher, workers, bar)
        excluder.save(paths["exclude"], signature)
        state.save(paths["state"])
    finished = _score_pool(pool, exclude, settings, teacher, excluder, state, paths["state"], workers=workers,
                           state_every=state_every, max_batches=max_batches, progress=bar, log=not show)
    result = MineResult(None, None, [], paths["state"], finished, state.processed, len(pool),
                        duplicates=state.duplicates, undecodable=state.undecodable)
    if not finished:
        return result
    result.selected = _write_outputs(out, paths, pool, exclude, settings, state, teacher.size)
    result.list_path, result.summary_path = out, paths["summary"]
    result.plot_paths = [p for p in (paths["scores"], paths["duplicates"]) if p.exists()]
    paths["state"].unlink(missing_ok=True)
    paths["exclude"].unlink(missing_ok=True)
    return result


def _score_pool(pool: "Images", exclude: "Images", settings: MineSettings, teacher: Teacher, excluder: Excluder,
                state: MineState, state_path: Path, *, workers: int, state_every: int, max_batches: int | None,
                progress: Callable[[Any, str], Any], log: bool) -> bool:
    """Stream the pool from `state.processed` on; True when every image is done, False when stopped early. With
    `log`, print a line at every state save."""
    loader = _batches(pool, state.processed, settings, teacher.transform, settings.dedup == "phash", workers,
                      teacher.device.startswith("cuda"))
    done, started = 0, time.perf_counter()
    try:
        for batch in progress(loader, f"pool: {len(pool)} images, from {state.processed}"):
            _score_batch(batch, pool, exclude, settings, teacher, excluder, state)
            state.processed = min(state.processed + settings.batch_size, len(pool))
            done += 1
            if done % state_every == 0 or done == max_batches:
                state.seconds += time.perf_counter() - started
                started = time.perf_counter()
                state.save(state_path)
                if log:
                    _log(f"{state.processed}/{len(pool)} pool images, {state.duplicates} near-duplicates, "
                         f"{state.processed / state.seconds:.0f} img/s; state saved")
            if done == max_batches and state.processed < len(pool):
                return False
    except KeyboardInterrupt:
        state.seconds += time.perf_counter() - started
        state.save(state_path)
        raise MineError(f"interrupted after {state.processed} of {len(pool)} pool images; the state is saved in "
                        f"{state_path}: rerun the same command with --resume to continue.") from None
    state.seconds += time.perf_counter() - started
    return True


def _score_batch(batch: _Batch, pool: "Images", exclude: "Images", settings: MineSettings, teacher: Teacher,
                 excluder: Excluder, state: MineState) -> None:
    state.undecodable += len(batch.failed)
    state.undecodable_examples += [entry(pool, i) for i in batch.failed][:EXAMPLES - len(state.undecodable_examples)]
    if batch.images is None:
        return
    scores, classes, feats = teacher(batch.images)
    nearest, value = excluder.nearest(batch.hashes, feats)
    dup = excluder.is_duplicate(value)
    state.duplicates += int(dup.sum())
    for k in dup.nonzero()[0][:EXAMPLES - len(state.duplicate_examples)].tolist():
        pool_index, exclude_index = int(batch.indices[k]), int(nearest[k])
        state.duplicate_examples.append({"pool": entry(pool, pool_index), "exclude": entry(exclude, exclude_index),
                                         "distance" if settings.dedup == "phash" else "similarity": value[k],
                                         "pool_index": pool_index, "exclude_index": exclude_index})
    keep = ~dup
    state.offer(scores[keep], classes[keep], batch.indices[keep], settings.per_class, settings.min_score)


# --- outputs -----------------------------------------------------------------------------------------------------

def _histogram_quantiles(histogram: list[int]) -> dict[str, float] | None:
    """Quantiles of the binned candidate scores, each the upper edge of its 1/SCORE_BINS-wide bin."""
    import numpy as np
    cumulative = np.cumsum(histogram)
    if cumulative[-1] == 0:
        return None
    bins = [min(int(np.searchsorted(cumulative, max(q * cumulative[-1], 1))), SCORE_BINS - 1) for q in QUANTILES]
    return {f"{q:g}": (b + 1) / SCORE_BINS for q, b in zip(QUANTILES, bins)}


def _summary(settings: MineSettings, state: MineState, pool: "Images", exclude_size: int,
             selected: list[tuple[int, float, int]], input_size: int) -> dict[str, Any]:
    import numpy as np
    scores = np.array([s for _, s, _ in selected])
    labelled = bool((pool.labels >= 0).any())
    per_class = []
    for c, heap in enumerate(state.heaps):
        row: dict[str, Any] = {"class": c, "candidates": state.predicted[c], "selected": len(heap),
                               "min_score": heap[0][0] if heap else None}
        if labelled:
            row["label_agreement"] = float(np.mean([pool.labels[-i] == c for _, i in heap])) if heap else None
        per_class.append(row)
    summary = {
        "settings": asdict(settings), "teacher_input_size": input_size,
        "pool": {"images": len(pool), "undecodable": state.undecodable, "near_duplicates": state.duplicates,
                 "candidates": int(sum(state.predicted)), "selected": len(selected)},
        "exclude_images": exclude_size,
        "scores": {"candidates_quantiles_binned": _histogram_quantiles(state.histogram),
                   "selected_quantiles": ({f"{q:g}": float(np.quantile(scores, q)) for q in QUANTILES}
                                          if len(scores) else None)},
        "per_class": per_class,
        "duplicate_examples": state.duplicate_examples, "undecodable_examples": state.undecodable_examples,
        "seconds": round(state.seconds, 2),
        "images_per_second": round(state.processed / state.seconds, 1) if state.seconds else None}
    if labelled and len(selected):
        summary["label_agreement"] = float(np.mean([pool.labels[i] == c for c, _, i in selected]))
    return summary


def _write_outputs(out: Path, paths: dict[str, Path], pool: "Images", exclude: "Images", settings: MineSettings,
                   state: MineState, input_size: int) -> int:
    from ssld_zoo.files import write_text_atomic
    selected = sorted(((c, s, -i) for c, heap in enumerate(state.heaps) for s, i in heap), key=lambda t: t[2])
    header = [f"# ssld-zoo mine: {len(selected)} images from pool {settings.pool}"
              + (f" ({settings.pool_subset})" if settings.pool_subset else ""),
              f"# teacher {settings.teacher}" + (f" ({settings.teacher_weights})" if settings.teacher_weights else "")
              + f", input {input_size} px; top {settings.per_class} per predicted class"
              + (f", score >= {settings.min_score}" if settings.min_score is not None else ""),
              f"# near-duplicates of {settings.exclude} dropped: {state.duplicates} ({settings.dedup}, "
              f"{'distance <=' if settings.dedup == 'phash' else 'cosine >='} {settings.threshold:g})",
              "# use as an unlabeled recipe source: {source: 'list:THIS_FILE', labels: false}"]
    write_text_atomic(out, "\n".join(header + [entry(pool, i) for _, _, i in selected]) + "\n")
    summary = _summary(settings, state, pool, len(exclude), selected, input_size)
    write_text_atomic(paths["summary"], json.dumps(summary, indent=2) + "\n")
    _plot(paths, summary, state, pool, exclude)
    return len(selected)


def _plot(paths: dict[str, Path], summary: dict[str, Any], state: MineState, pool: "Images",
          exclude: "Images") -> None:
    """The score histogram and per-class counts; example duplicate pairs. Skipped without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        print("ssld-zoo mine: matplotlib is not installed, so no PNG plots (pip install matplotlib).",
              file=sys.stderr)
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(1, 2, figsize=(13, 4))
    edges = np.linspace(0, 1, SCORE_BINS + 1)
    axes[0].stairs(state.histogram, edges, fill=True, label="candidates")
    selected = [s for heap in state.heaps for s, _ in heap]
    axes[0].hist(selected, bins=edges, histtype="step", color="C3", label="selected")
    axes[0].set(title="teacher top-class confidence", xlabel="softmax score", ylabel="images", yscale="log")
    axes[0].legend()
    classes = np.arange(state.num_classes)
    axes[1].bar(classes, state.predicted, color="C0", label="candidates")
    axes[1].bar(classes, [row["selected"] for row in summary["per_class"]], color="C3", label="selected")
    axes[1].set(title="images per predicted class", xlabel="class", ylabel="images")
    axes[1].legend()
    _savefig_atomic(fig, paths["scores"])
    examples = state.duplicate_examples[:8]
    if not examples:
        return
    fig, axes = plt.subplots(2, len(examples), figsize=(1.6 * len(examples), 3.6), squeeze=False)
    for k, example in enumerate(examples):
        value = example.get("distance", example.get("similarity"))
        for row, (images, side) in enumerate(((pool, "pool"), (exclude, "exclude"))):
            axes[row, k].imshow(images.image(example[f"{side}_index"]))
            axes[row, k].set_axis_off()
            axes[row, k].set_title(_short(example[side]) + (f"\n{value:.3g}" if row == 0 else ""), fontsize=7)
    fig.suptitle("near-duplicates dropped: pool (top) / excluded image (bottom)", fontsize=9)
    _savefig_atomic(fig, paths["duplicates"])


def _short(name: str) -> str:
    return name if name.startswith("cifar10:") else Path(name).name


def _savefig_atomic(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt
    try:
        with atomic_path(path) as tmp:
            fig.tight_layout()
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


# --- command line ------------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `mine` command's arguments."""
    parser.add_argument("--teacher", required=True, help="zoo name (resnet56_cifar), timm name or hf-hub:org/name")
    parser.add_argument("--teacher-weights", metavar="W", help="a .safetensors / torch checkpoint file or Hub-layout "
                                                               "folder (default: the model's pretrained weights)")
    parser.add_argument("--pool", required=True, metavar="DIR_OR_LIST",
                        help="a folder of images (recursive), a list file, or cifar10:train / cifar10:test")
    parser.add_argument("--pool-subset", metavar="SUBSET", help="per_class:N or except_per_class:N of a labelled pool")
    parser.add_argument("--exclude", required=True, metavar="EVAL",
                        help="evaluation images whose near-duplicates are dropped (folder, list, cifar10:test)")
    parser.add_argument("--exclude-subset", metavar="SUBSET", help="per_class:N or except_per_class:N")
    parser.add_argument("--per-class", required=True, type=int, metavar="K", help="images kept per predicted class")
    parser.add_argument("--out", required=True, type=Path, metavar="LIST", help="list file to write")
    parser.add_argument("--dedup", choices=DEDUP_METHODS, default="phash",
                        help="perceptual hash (default) or cosine similarity of the teacher's pooled features")
    parser.add_argument("--threshold", type=float, metavar="X",
                        help=f"duplicate if phash distance <= X (default {DEFAULT_THRESHOLDS['phash']:g}) or feature "
                             f"cosine >= X (default {DEFAULT_THRESHOLDS['features']})")
    parser.add_argument("--min-score", type=float, metavar="S", help="keep only images the teacher scores >= S")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2, help="data-loading processes (default 2)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--input-size", type=int, metavar="PX", help="teacher input size (default: its pretrained cfg)")
    parser.add_argument("--data", metavar="DIR", help="data folder for cifar10: sources and data-folder weights "
                                                      "(default: $SSLD_ZOO_DATA)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run from LIST's state file")
    parser.add_argument("--state-every", type=int, default=50, metavar="N", help="save the state every N batches")
    parser.add_argument("--max-batches", type=int, metavar="N",
                        help="stop after N batches with the state saved (continue later with --resume)")


def run(args: argparse.Namespace) -> MineResult:
    """Mine as `args` say and print what was written."""
    settings = MineSettings(teacher=args.teacher, pool=args.pool, exclude=args.exclude, per_class=args.per_class,
                            teacher_weights=args.teacher_weights, pool_subset=args.pool_subset,
                            exclude_subset=args.exclude_subset, dedup=args.dedup, threshold=args.threshold,
                            min_score=args.min_score, input_size=args.input_size, batch_size=args.batch_size)
    result = mine(settings, args.out, data_root=args.data, device=args.device, workers=args.workers,
                  resume=args.resume, state_every=args.state_every, max_batches=args.max_batches)
    if not result.complete:
        print(f"stopped after {result.processed} of {result.pool_size} pool images; state saved in "
              f"{result.state_path}: rerun with --resume to continue.")
        return result
    print(f"mined {result.selected} images from {result.pool_size} pool images ({result.duplicates} near-duplicates "
          f"of the excluded images dropped, {result.undecodable} undecodable)")
    for path in [result.list_path, result.summary_path, *result.plot_paths]:
        print(f"  {path}")
    return result
