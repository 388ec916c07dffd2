"""One identity per image source, shared by the soft-label cache and `mine`: `Images.entry` (what a list file names)
and `Images.fingerprint` (which images a source holds); plus the resume and device rules every command shares."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssld_zoo.errors import EvaluationError, SsldZooError
from ssld_zoo.train.data import Cifar, EvalBatches, Files, Listed, Selection, open_source
from ssld_zoo.train.distributed import pick_device
from ssld_zoo.train.recipe import DataSource
from ssld_zoo.train.resume import setting_changes


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for cls, colour in enumerate(("red", "green", "blue")):
        (folder / f"c{cls}").mkdir(parents=True)
        Image.new("RGB", (9, 7), colour).save(folder / f"c{cls}" / f"{colour}.png")
    return folder


@pytest.mark.usefixtures("shared_data")
def test_entries_name_the_same_images_when_read_back_as_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _folder(tmp_path)
    monkeypatch.chdir(tmp_path)
    files = open_source(DataSource("imagefolder:images"), None)
    assert isinstance(files, Files) and not Path(files.paths[0]).is_absolute()
    cifar = Selection(Cifar("test", None), np.array([7, 3]), hide_labels=True)
    sources = [(files, i) for i in range(len(files))] + [(cifar, i) for i in range(len(cifar))]
    listing = tmp_path / "lists" / "mined.txt"
    listing.parent.mkdir()
    listing.write_text("".join(f"{images.entry(i)}\n" for images, i in sources))
    listed = open_source(DataSource(f"list:{listing}"), None)
    assert [listed.entry(k) for k in range(len(listed))] == [images.entry(i) for images, i in sources]
    assert listed.entry(0) == str(tmp_path / "images" / "c0" / "red.png") and listed.entry(3) == "cifar10:test/7"
    for k, (images, i) in enumerate(sources):
        assert np.array_equal(np.asarray(listed.image(k)), np.asarray(images.image(i)))


@pytest.mark.usefixtures("shared_data")
def test_fingerprints_keep_the_values_soft_label_caches_recorded():
    """Caches of format version 1 recorded these (computed by the cache's own fingerprint before it moved into
    `Images`); a change here makes every existing cache refuse its sources."""
    assert Listed(["/data/a.png", ("test", 3)], [0, 1], None).fingerprint() == \
        "ab6631e7de9dfcdbf33d55d0682ea369a3dc48f3186fce03f8cde705763f5df5"
    assert Selection(Files(["x/b.png", "/y/c.jpg"], [0, 1]), np.array([1, 0]), hide_labels=True).fingerprint() == \
        "38a793513f22ca30958cb173e09b3bbe605a2f9a941ef1aad4fbf10f0bdfa80e"
    assert Selection(Cifar("test", None), np.array([5, 2]), hide_labels=False).fingerprint() == \
        "655a46e7786b22b38fb4712b99e22fa4c4c735bf8a7306c2c3fbfc897331d92f"


def test_fingerprints_follow_which_images_and_their_order_not_labels():
    base = Files(["a.png", "b.png", "c.png"], [0, 1, 2])
    assert Files(["a.png", "b.png", "c.png"], [5, 5, 5]).fingerprint() == base.fingerprint()
    assert Files(["a.png", "c.png", "b.png"], [0, 1, 2]).fingerprint() != base.fingerprint()
    some = Selection(base, np.array([0, 2]), hide_labels=False)
    assert Selection(base, np.array([0, 2]), hide_labels=True).fingerprint() == some.fingerprint()
    assert Selection(base, np.array([2, 0]), hide_labels=False).fingerprint() != some.fingerprint()
    assert Listed(["a.png", ("test", 1)], [0, 0], None).fingerprint() != \
        Listed(["a.png", ("train", 1)], [0, 0], None).fingerprint()


def test_eval_batches_start_where_a_pass_stopped():
    keys = [[i for i, _ in batch] for batch in EvalBatches(10, 3, start=4)]
    assert keys == [[4, 5, 6], [7, 8, 9]] and len(EvalBatches(10, 3, start=4)) == 2
    assert [[i for i, _ in b] for b in EvalBatches(10, 4, rank=1, world=2, start=2)] == [[3, 5, 7, 9]]
    assert len(EvalBatches(10, 3, start=10)) == 0 and list(EvalBatches(10, 3, start=10)) == []


def test_setting_changes_names_every_differing_key_but_the_ones_a_resume_may_change():
    saved = {"seed": 1, "views": 2, "workers": 4, "gone": True}
    now = {"seed": 1, "views": 3, "workers": 8, "new": 0, "added_at_its_default": None}
    assert setting_changes(saved, now) == ["gone", "new", "views", "workers"]
    assert setting_changes(saved, now, may_change=("workers", "gone", "new")) == ["views"]
    assert setting_changes(now, dict(now)) == []


def test_pick_device_defaults_to_what_torch_sees_and_refuses_unknown_names():
    assert pick_device() == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == torch.device("cpu")
    with pytest.raises(EvaluationError, match="'gpu0' is not a torch device") as caught:
        pick_device("gpu0", error=EvaluationError)
    assert caught.value.__cause__ is not None
    if not torch.cuda.is_available():
        with pytest.raises(SsldZooError, match="--device cuda:1: torch sees no CUDA device here; use --device cpu"):
            pick_device("cuda:1")
