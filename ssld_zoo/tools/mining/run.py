"""`mine()`: stream the pool through the teacher, drop near-duplicates of the evaluation images, keep each class's
most confident images, and write the list (the files are described in `ssld_zoo.tools.mine`)."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ssld_zoo.errors import MineError
from ssld_zoo.files import run_lock
from ssld_zoo.reporting import progress_bars
from ssld_zoo.tools.mining.excluder import Excluder, exclude_fingerprints
from ssld_zoo.tools.mining.outputs import output_paths, write_outputs
from ssld_zoo.tools.mining.pool import DecodedBatch, batches, open_images
from ssld_zoo.tools.mining.settings import MineResult, MineSettings
from ssld_zoo.tools.mining.state import EXAMPLES, MineState
from ssld_zoo.tools.mining.teacher import Teacher
from ssld_zoo.train.resume import setting_changes

if TYPE_CHECKING:
    from ssld_zoo.train.data import Images

_logger = logging.getLogger("ssld_zoo.tools.mine")  # the command's logger: its lines carry its CLI tag


def _progress_bar(enabled: bool) -> Callable[[Any, str], Any]:
    """`wrap(loader, desc)`: the loader with a tqdm bar over its batches, or unchanged when not `enabled`."""
    from tqdm import tqdm

    def wrap(loader: Any, desc: str) -> Any:
        return tqdm(loader, total=len(loader), desc=desc, unit="batch", disable=not enabled, dynamic_ncols=True)
    return wrap


def mine(settings: MineSettings, out: str | os.PathLike, *, data_root: str | os.PathLike | None = None,
         device: str | None = None, workers: int = 2, resume: bool = False, state_every: int = 50,
         max_batches: int | None = None, progress: bool | None = None) -> MineResult:
    """Mine the pool as `settings` say into the list file `out` (`ssld_zoo.tools.mine` lists the files written).

    `resume=True` continues an interrupted run from its state file (same settings and pool, else MineError);
    `state_every` batches between state saves; `max_batches` stops this call after that many batches with the state
    saved (`complete=False`); `progress` shows a tqdm bar (default: `reporting.progress_bars`).
    """
    settings = settings.checked()
    out = Path(out).expanduser()
    with run_lock(out, beside=True):  # one run at a time writes `out` and its state
        return _mine(settings, out, data_root=data_root, device=device, workers=workers, resume=resume,
                     state_every=state_every, max_batches=max_batches, progress=progress)


def _mine(settings: MineSettings, out: Path, *, data_root: str | os.PathLike | None, device: str | None,
          workers: int, resume: bool, state_every: int, max_batches: int | None, progress: bool | None) -> MineResult:
    """`mine`'s work, with `out` owned."""
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
    if saved is not None and (changed := setting_changes(saved.settings, now)):
        then = "; ".join(f"{k}: {saved.settings.get(k)!r} then, {now.get(k)!r} now" for k in changed)
        raise MineError(f"cannot resume {paths['state']}: it was written with other settings ({then}). Rerun with "
                        "the same settings, or delete the state file to start over.")
    pool = open_images(settings.pool, settings.pool_subset, data_root, "--pool")
    pool_print = pool.fingerprint()
    if saved is not None and saved.pool_fingerprint != pool_print:
        raise MineError(f"cannot resume {paths['state']}: the pool '{settings.pool}' holds other images now "
                        f"({len(pool)}); restore it or delete the state file to start over.")
    exclude = open_images(settings.exclude, settings.exclude_subset, data_root, "--exclude")
    out.parent.mkdir(parents=True, exist_ok=True)
    from ssld_zoo.train.distributed import pick_device
    from ssld_zoo.train.networks import num_classes
    teacher = Teacher(settings, data_root, pick_device(device, error=MineError))
    state = saved or MineState(now, pool_print, num_classes(teacher.net.model))
    show = progress_bars(_logger, progress)
    bar = _progress_bar(show)
    signature = hashlib.sha256(json.dumps([now, exclude.fingerprint()]).encode()).hexdigest()
    excluder = Excluder.load(paths["exclude"], signature, settings) if resume else None
    if excluder is None:
        excluder = exclude_fingerprints(exclude, settings, teacher, workers, bar)
        excluder.save(paths["exclude"], signature)
        state.save(paths["state"])
    finished = _score_pool(pool, exclude, settings, teacher, excluder, state, paths["state"], workers=workers,
                           state_every=state_every, max_batches=max_batches, progress=bar, log=not show)
    result = MineResult(None, None, [], paths["state"], finished, state.processed, len(pool),
                        duplicates=state.duplicates, undecodable=state.undecodable)
    if not finished:
        return result
    result.selected = write_outputs(out, paths, pool, exclude, settings, state, teacher.size)
    result.list_path, result.summary_path = out, paths["summary"]
    result.plot_paths = [p for p in (paths["scores"], paths["duplicates"]) if p.exists()]
    paths["state"].unlink(missing_ok=True)
    paths["exclude"].unlink(missing_ok=True)
    return result


def _score_pool(pool: "Images", exclude: "Images", settings: MineSettings, teacher: Teacher, excluder: Excluder,
                state: MineState, state_path: Path, *, workers: int, state_every: int, max_batches: int | None,
                progress: Callable[[Any, str], Any], log: bool) -> bool:
    """Stream the pool from `state.processed` on; True when every image is done, False when stopped early. With
    `log`, log a line at every state save."""
    loader = batches(pool, state.processed, settings.batch_size, teacher.transform, settings.dedup == "phash",
                     workers, teacher.device.type == "cuda")
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
                    _logger.info("%d/%d pool images, %d near-duplicates, %.0f img/s; state saved", state.processed,
                                 len(pool), state.duplicates, state.processed / state.seconds)
            if done == max_batches and state.processed < len(pool):
                return False
    except KeyboardInterrupt:
        state.seconds += time.perf_counter() - started
        state.save(state_path)
        raise MineError(f"interrupted after {state.processed} of {len(pool)} pool images; the state is saved in "
                        f"{state_path}: rerun the same command with --resume to continue.") from None
    state.seconds += time.perf_counter() - started
    return True


def _score_batch(batch: DecodedBatch, pool: "Images", exclude: "Images", settings: MineSettings, teacher: Teacher,
                 excluder: Excluder, state: MineState) -> None:
    state.undecodable += len(batch.failed)
    state.undecodable_examples += [pool.entry(i) for i in batch.failed][:EXAMPLES - len(state.undecodable_examples)]
    if batch.images is None:
        return
    scores, classes, feats = teacher(batch.images)
    nearest, value = excluder.nearest(batch.hashes, feats)
    dup = excluder.is_duplicate(value)
    state.duplicates += int(dup.sum())
    for k in dup.nonzero()[0][:EXAMPLES - len(state.duplicate_examples)].tolist():
        pool_index, exclude_index = int(batch.indices[k]), int(nearest[k])
        state.duplicate_examples.append({"pool": pool.entry(pool_index), "exclude": exclude.entry(exclude_index),
                                         "distance" if settings.dedup == "phash" else "similarity": value[k],
                                         "pool_index": pool_index, "exclude_index": exclude_index})
    keep = ~dup
    state.offer(scores[keep], classes[keep], batch.indices[keep], settings.per_class, settings.min_score)

