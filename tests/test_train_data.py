"""Training data: sources, subsets, seeded augmentation, sharded resumable batches, undecodable images."""
from __future__ import annotations

import io
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from train_support import REPO_ROOT, TinyData, write_images

from ssld_zoo.errors import DataError
from ssld_zoo.train.data import (Collate, EvalBatches, ImageDataset, TrainBatches, Transform, loader, open_source,
                                 sample_seed)
from ssld_zoo.train.recipe import Augment, DataSource


def test_imagefolder_folder_and_list_sources(tiny_data: TinyData):
    folder = open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}"))
    assert len(folder) == 24 and folder.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert folder.image(9).size == (20, 24) and folder.image(9).mode == "RGB"
    unlabeled = open_source(DataSource(f"folder:{tiny_data.unlabeled}"))  # recursive
    assert len(unlabeled) == 8 and (unlabeled.labels == -1).all()
    listed = open_source(DataSource(f"list:{tiny_data.list_file}"))  # paths relative to the list file
    assert len(listed) == 24 and listed.labels[:4].tolist() == [0, -1, 0, -1]
    assert np.array_equal(np.asarray(listed.image(0)), np.asarray(folder.image(0)))


def test_links_back_up_add_no_image(tiny_data: TinyData, caplog: pytest.LogCaptureFixture):
    """A link from a class folder back to the data root (or into another class) is skipped, not followed: the same
    24 images with the same labels, and one warning that says so (issue 22: one such link made 10 images 410)."""
    root = tiny_data.imagefolder
    classes = sorted(p for p in root.iterdir() if p.is_dir())
    (classes[0] / "up").symlink_to("..")
    (classes[1] / "sibling").symlink_to(classes[2])
    (classes[2] / "loop").symlink_to(classes[2])
    folder = open_source(DataSource(f"imagefolder:{root}"))
    assert len(folder) == 24 and folder.labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8
    assert "skipped 1 link to a folder already walked" in caplog.text
    unlabeled = open_source(DataSource(f"folder:{root}"))
    assert len(unlabeled) == 24


def test_subsets_and_hidden_labels(tiny_data: TinyData):
    first = open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}", subset="per_class:3"))
    rest = open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}", labels=False,
                                  subset="except_per_class:3"))
    assert first.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert len(rest) == 15 and (rest.labels == -1).all()
    assert np.array_equal(np.asarray(rest.image(0)), np.asarray(Image.open(tiny_data.files[0][3]).convert("RGB")))
    with pytest.raises(DataError, match="has no images"):
        open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}", subset="except_per_class:8"))
    with pytest.raises(DataError, match="does not exist"):
        open_source(DataSource(f"folder:{tiny_data.root / 'nope'}"))
    bad = tiny_data.root / "bad.txt"
    bad.write_text("a.png -3\n")
    with pytest.raises(DataError, match="bad.txt:1: label -3"):
        open_source(DataSource(f"list:{bad}"))


def test_cifar10_source_reads_the_packed_split(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SSLD_ZOO_DATA", os.environ.get("SSLD_ZOO_DATA") or str(REPO_ROOT.parent / "shared" / "data"))
    test = open_source(DataSource("cifar10:test", labels=True, subset="per_class:2"))
    assert test.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert test.image(3).size == (32, 32)
    monkeypatch.delenv("SSLD_ZOO_DATA")
    with pytest.raises(DataError, match="SSLD_ZOO_DATA"):
        open_source(DataSource("cifar10:train"), data_root=None)


def test_augmentation_is_seeded_per_sample(tiny_data: TinyData):
    augment = Augment(random_resized_crop=(0.3, 1.0), pad_crop=3, hflip=True, auto_augment="rand-m9-mstd0.5")
    dataset = ImageDataset([open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}"))],
                           Transform(16, augment, train=True))
    random.seed(123)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    first = [dataset[(i, (0, 0, 0))][1] for i in range(24)]
    again = [dataset[(i, (0, 0, 0))][1] for i in reversed(range(24))][::-1]
    other_epoch = [dataset[(i, (0, 0, 1))][1] for i in range(24)]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert sum(torch.equal(a, b) for a, b in zip(first, other_epoch)) < 3
    assert first[0].shape == (3, 16, 16) and first[0].dtype == torch.uint8
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])  # nothing draws from the global RNGs
    assert sample_seed((0, 0, 0), 5) != sample_seed((0, 1, 0), 5) != sample_seed((1, 0, 0), 5)


def test_eval_transform_resizes_short_side_and_center_crops():
    im = Image.fromarray(np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3) % 251)
    png = io.BytesIO()
    im.save(png, format="PNG")
    out = Transform(16, Augment(eval_crop_pct=0.5), train=False)(png.getvalue(), None)
    expected = np.asarray(im.resize((48, 32), Image.Resampling.BILINEAR).crop((16, 8, 32, 24)))
    assert torch.equal(out, torch.from_numpy(expected.copy()).permute(2, 0, 1))


def test_batches_do_not_depend_on_worker_count(tiny_data: TinyData):
    dataset = ImageDataset([open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}")),
                            open_source(DataSource(f"folder:{tiny_data.unlabeled}"))],
                           Transform(16, Augment(pad_crop=2, hflip=True), train=True))
    runs = []
    for workers in (0, 2):
        batches = TrainBatches(len(dataset), 8, seed=3, stage=0, epoch=1)
        runs.append(list(loader(dataset, batches, workers=workers, pin_memory=False)))
    assert len(runs[0]) == 4
    for a, b in zip(*runs):
        assert torch.equal(a.images, b.images) and torch.equal(a.indices, b.indices)
        assert torch.equal(a.labels, b.labels)


def test_sharded_batches_split_each_step_and_resume_without_loading():
    n, batch = 50, 8
    single = list(TrainBatches(n, batch, seed=1, stage=0, epoch=2))
    ranks = [list(TrainBatches(n, batch, seed=1, stage=0, epoch=2, rank=r, world=2)) for r in range(2)]
    assert len(single) == 6  # the last 2 images are dropped
    for step, keys in enumerate(single):
        assert sorted(ranks[0][step] + ranks[1][step]) == sorted(keys) and len(ranks[0][step]) == 4
    assert list(TrainBatches(n, batch, seed=1, stage=0, epoch=2, start_step=4)) == single[4:]
    assert len(TrainBatches(n, batch, seed=1, stage=0, epoch=2, start_step=4)) == 2
    other = [k for keys in TrainBatches(n, batch, seed=1, stage=0, epoch=3) for k, _ in keys]
    assert other != [k for keys in single for k, _ in keys]
    shares = [k for r in range(3) for keys in EvalBatches(10, 2, rank=r, world=3) for k, _ in keys]
    assert sorted(shares) == list(range(10))


def test_undecodable_images_are_dropped_and_counted(tmp_path: Path):
    write_images(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "garbage.png").write_bytes(b"not an image at all")
    good = (tmp_path / "imgs" / "000.png").read_bytes()
    (tmp_path / "imgs" / "truncated.png").write_bytes(good[: len(good) // 2])
    dataset = ImageDataset([open_source(DataSource(f"folder:{tmp_path / 'imgs'}"))],
                           Transform(16, Augment(), train=False))
    batch = Collate(16)([dataset[(i, None)] for i in range(len(dataset))])
    assert batch.skipped == 2 and batch.images.shape == (4, 3, 16, 16)
    assert batch.indices.tolist() == [0, 1, 2, 3]
    empty = Collate(16)([dataset[(4, None)]])
    assert empty.skipped == 1 and empty.images.shape == (0, 3, 16, 16)
