"""`ssld-zoo pack` and the `shards:` source: real WebDataset tar shards on disk and behind a loopback HTTP server give
the same images, labels, seeded views and DDP shares as the source they were packed from, and train a recipe."""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch
from fileserver import FileServer
from train_support import TinyData, base_recipe, write_images

from ssld_zoo.cli import main
from ssld_zoo.data.pixels import open_image
from ssld_zoo.data.shards import INDEX, expand_braces
from ssld_zoo.errors import DataError
from ssld_zoo.tools.pack import pack
from ssld_zoo.train.data import ImageDataset, Shards, TrainBatches, Transform, loader, open_source
from ssld_zoo.train.recipe import Augment, DataSource, parse_recipe


@pytest.fixture
def packed(tiny_data: TinyData, tmp_path: Path) -> Path:
    """The tiny imagefolder (3 classes x 8 PNGs) packed 5 images to a shard."""
    assert main(["pack", f"imagefolder:{tiny_data.imagefolder}", "--out", str(tmp_path / "shards"),
                 "--per-shard", "5"]) == 0
    return tmp_path / "shards"


def serve(folder: Path) -> FileServer:
    server = FileServer()
    server.files.update({f"ds/{p.name}": p.read_bytes() for p in folder.iterdir()})
    return server


def test_pack_writes_webdataset_tar_shards_with_a_wids_index(packed: Path, tiny_data: TinyData):
    index = json.loads((packed / INDEX).read_text())
    assert index["__kind__"] == "wids-shard-index-v1"
    assert [s["nsamples"] for s in index["shardlist"]] == [5, 5, 5, 5, 4]
    with tarfile.open(packed / index["shardlist"][1]["url"]) as tar:
        names = tar.getnames()
        assert names[:4] == ["000000005.png", "000000005.cls", "000000006.png", "000000006.cls"]
        assert tar.extractfile("000000005.cls").read() == b"0"  # type: ignore[union-attr]
        stored = tar.extractfile("000000005.png").read()  # type: ignore[union-attr]
    assert stored == tiny_data.files[0][5].read_bytes()  # stored as it was, not re-encoded


@pytest.mark.parametrize("where", ["folder", "index", "braces"])
def test_shards_give_the_source_images_labels_views_and_ddp_shares(packed: Path, tiny_data: TinyData, where: str):
    location = {"folder": str(packed), "index": str(packed / INDEX),
                "braces": str(packed / "shard-{000000..000004}.tar")}[where]
    shards = open_source(DataSource(f"shards:{location}"))
    folder = open_source(DataSource(f"imagefolder:{tiny_data.imagefolder}"))
    assert isinstance(shards, Shards) and len(shards) == len(folder) == 24
    assert shards.labels.tolist() == folder.labels.tolist()
    assert all(shards.encoded(i) == folder.encoded(i) for i in range(24))
    transform = Transform(16, Augment(random_resized_crop=(0.3, 1.0), hflip=True), train=True)
    for rank in range(2):
        runs = [list(loader(ImageDataset([images], transform),
                            TrainBatches(24, 8, seed=5, stage=0, epoch=1, rank=rank, world=2), workers=workers,
                            pin_memory=False)) for images, workers in ((folder, 0), (shards, 2))]
        for a, b in zip(*runs, strict=True):
            assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
            assert torch.equal(a.indices, b.indices)


def test_shards_over_http_are_fetched_once_and_read_the_same(packed: Path, monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path):
    server = serve(packed)
    local = open_source(DataSource(f"shards:{packed}"))
    for location in (f"{server.url}/ds", f"{server.url}/ds/{INDEX}", f"{server.url}/ds/shard-{{000000..000004}}.tar"):
        remote = open_source(DataSource(f"shards:{location}"))
        assert remote.labels.tolist() == local.labels.tolist()
        assert all(remote.encoded(i) == local.encoded(i) for i in range(len(local)))
    assert sorted(p for p in server.log if p.endswith(".tar")) == sorted(f"ds/shard-{n:06d}.tar" for n in range(5))


def test_pack_max_side_pre_resizes_and_keeps_labels(tmp_path: Path):
    write_images(tmp_path / "src" / "a", 3, label=0, size=(300, 200))
    write_images(tmp_path / "src" / "b", 2, label=1, size=(40, 90), suffix=".jpg")
    (tmp_path / "src" / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a JPEG")
    summary = pack(f"imagefolder:{tmp_path / 'src'}", tmp_path / "out", max_side=64)
    assert (summary["images"], summary["skipped"], summary["shards"]) == (5, 1, 1)
    shards = open_source(DataSource(f"shards:{tmp_path / 'out'}"))
    assert shards.labels.tolist() == [0, 0, 0, 1, 1]
    sizes = [open_image(shards.encoded(i)).size for i in range(5)]
    assert sizes == [(64, 43)] * 3 + [(28, 64)] * 2
    assert all(open_image(shards.encoded(i)).format == "JPEG" for i in range(5))


def test_pack_raw_stores_the_decoded_pixels_and_trains_on_the_same_views(tmp_path: Path, tiny_data: TinyData):
    """`--raw`: every image as a binary PPM of the pixels training decodes from the original (JPEGs and PNGs alike),
    so each seeded train view and each eval view is the same tensor, read without decoding."""
    from ssld_zoo.data.pixels import decode
    source = tmp_path / "src"
    write_images(source / "a", 3, label=0, size=(90, 60), suffix=".jpg")
    write_images(source / "b", 2, label=1, size=(50, 70))
    assert main(["pack", f"imagefolder:{source}", "--out", str(tmp_path / "raw"), "--raw"]) == 0
    with tarfile.open(tmp_path / "raw" / "shard-000000.tar") as tar:
        assert tar.getnames()[:2] == ["000000000.ppm", "000000000.cls"]
    raw, folder = (open_source(DataSource(f"{kind}:{path}")) for kind, path in
                   (("shards", tmp_path / "raw"), ("imagefolder", source)))
    assert raw.labels.tolist() == folder.labels.tolist() == [0, 0, 0, 1, 1]
    assert all(torch.equal(decode(raw.encoded(i)), decode(folder.encoded(i))) for i in range(5))
    assert all(open_image(raw.encoded(i)).format == "PPM" for i in range(5))
    for train in (True, False):
        transform = Transform(32, Augment(random_resized_crop=(0.08, 1.0), hflip=True), train=train)
        views = [torch.stack([transform(images.encoded(i), 7 * i if train else None) for i in range(5)])
                 for images in (raw, folder)]
        assert torch.equal(*views)
    pack(f"imagefolder:{source}", tmp_path / "small", raw=True, max_side=40)
    small = open_source(DataSource(f"shards:{tmp_path / 'small'}"))
    assert [decode(small.encoded(i)).shape[1:] for i in range(5)] == [(27, 40)] * 3 + [(40, 29)] * 2


def test_a_recipe_trains_from_shards_on_disk_and_over_http(packed: Path, tiny_data: TinyData, tmp_path: Path):
    from ssld_zoo.train.engine import train
    server = serve(packed)
    raw = base_recipe(tiny_data, name="from_shards")
    raw["stages"][0]["epochs"] = 1
    raw["stages"][0]["train"] = [{"source": f"shards:{packed}", "labels": False},
                                 {"source": f"shards:{server.url}/ds", "labels": False}]
    out = train(parse_recipe(raw), tmp_path / "run", device="cpu")
    assert (out / "model.safetensors").is_file()
    assert any(p.endswith(".tar") for p in server.log)


def test_bad_shard_locations_are_one_clear_error(tmp_path: Path):
    assert expand_braces("a-{08..10}-{0..1}.tar") == ["a-08-0.tar", "a-08-1.tar", "a-09-0.tar", "a-09-1.tar",
                                                      "a-10-0.tar", "a-10-1.tar"]
    with pytest.raises(DataError, match="does not exist"):
        open_source(DataSource(f"shards:{tmp_path}"))
    (tmp_path / INDEX).write_text("{}")
    with pytest.raises(DataError, match="is not a shard index"):
        open_source(DataSource(f"shards:{tmp_path}"))
    (tmp_path / "x-0.tar").write_bytes(b"not a tar file" * 100)
    with pytest.raises(DataError, match="is not a readable tar shard"):
        open_source(DataSource(f"shards:{tmp_path}/x-{{0..0}}.tar"))
    server = FileServer()
    with pytest.raises(DataError, match="Cannot fetch .*404"):
        open_source(DataSource(f"shards:{server.url}/nothing/"))
