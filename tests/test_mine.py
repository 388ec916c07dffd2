"""`ssld-zoo mine` on real CIFAR-10 images with the real pretrained CIFAR teachers (read from `$SSLD_ZOO_DATA`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance

from ssld_zoo.cli import main
from ssld_zoo.errors import DataError
from ssld_zoo.errors import SsldZooError
from ssld_zoo.tools.mine import MineError, MineSettings, MineState, hamming, mine, output_paths, phash
from ssld_zoo.train.data import open_source
from ssld_zoo.train.recipe import DataSource

pytestmark = pytest.mark.usefixtures("shared_data")  # fails, naming SSLD_ZOO_DATA, without it

EVAL = range(200)  # cifar10:test/0..199 are the evaluation images
PLANTED = {"exact_3.png": 3, "brighter_7.jpg": 7, "shifted_11.png": 11}  # copies of evaluation images in the pool


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared 2-core machine, spinning OpenMP threads slow small batches down tenfold."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def packs() -> tuple:
    from ssld_zoo.data.cifar import load_cifar10
    return load_cifar10("train"), load_cifar10("test")


@pytest.fixture(scope="module")
def eval_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval") / "eval.txt"
    path.write_text("".join(f"cifar10:test/{i}\n" for i in EVAL))
    return path


def _brighter(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.06)


def _shifted(image: Image.Image) -> Image.Image:
    """The image shifted right by one pixel (the edge column repeated)."""
    array = np.asarray(image)
    return Image.fromarray(np.concatenate([array[:, :1], array[:, :-1]], axis=1))


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory: pytest.TempPathFactory, packs: tuple) -> Path:
    """161 CIFAR-10 training images as PNG; planted: an evaluation image copied, re-saved as JPEG 6% brighter, and
    upscaled to 128 px and shifted by 1 px; one undecodable file."""
    train, test = packs
    root = tmp_path_factory.mktemp("pool")
    (root / "train" / "deeper").mkdir(parents=True)
    for i in range(0, 50_000, 311):
        folder = root / "train" / ("deeper" if i % 2 else "")
        train.image(i).save(folder / f"{i}.png")
    planted = root / "planted"
    planted.mkdir()
    test.image(3).save(planted / "exact_3.png")
    _brighter(test.image(7)).save(planted / "brighter_7.jpg", quality=90)
    _shifted(test.image(11).resize((128, 128), Image.Resampling.BICUBIC)).save(planted / "shifted_11.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


@pytest.fixture(scope="module")
def cifar_pool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A list file of 300 `cifar10:train/INDEX` entries."""
    path = tmp_path_factory.mktemp("cifar_pool") / "pool.txt"
    path.write_text("# CIFAR-10 training images\n" + "".join(f"cifar10:train/{i}\n" for i in range(0, 50_000, 167)))
    return path


def _independent_scores(teacher: str, paths: list[Path]) -> dict[str, tuple[float, int]]:
    """Each image's top softmax score and class, with the zoo model and timm's own eval transform."""
    import ssld_zoo
    model = ssld_zoo.create(teacher, pretrained=True).eval()
    transform = ssld_zoo.get_transform(model)
    x = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        score, cls = model(x).double().softmax(-1).max(-1)
    return {os.path.abspath(p): (s, c) for p, s, c in zip(paths, score.tolist(), cls.tolist())}


def _entries(list_path: Path) -> list[str]:
    return [line for line in list_path.read_text().splitlines() if line and not line.startswith("#")]


def _assert_top_k(selected: list[str], scores: dict[str, tuple[float, int]], k: int) -> None:
    """Per class: as many as possible up to k, and none left out that scores higher than one kept."""
    assert set(selected) <= set(scores)
    for cls in {c for _, c in scores.values()}:
        members = {p: s for p, (s, c) in scores.items() if c == cls}
        kept = [members[p] for p in selected if p in members]
        dropped = [s for p, s in members.items() if p not in selected]
        assert len(kept) == min(k, len(members))
        if dropped:
            assert min(kept) >= max(dropped) - 1e-9


def test_phash_matches_scipy_dct_and_survives_reencoding(packs: tuple) -> None:
    scipy_fft = pytest.importorskip("scipy.fft")
    _, test = packs
    image = test.image(5)
    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    low = scipy_fft.dctn(grey, norm="ortho")[:8, :8].ravel()
    expected = int("".join("1" if v > np.median(low) else "0" for v in low), 2)
    assert phash(image) == expected
    hashes = np.array([phash(image), phash(_brighter(image)), phash(image.resize((96, 96))), phash(test.image(6))],
                      dtype=np.uint64)
    distances = hamming(hashes[:1], hashes)[0]
    assert distances[0] == 0 and distances[1] <= 6 and distances[2] <= 6 and distances[3] > 12


def test_phash_mining_keeps_top_k_and_drops_planted_duplicates(tmp_path: Path, pool_dir: Path,
                                                                eval_list: Path) -> None:
    out = tmp_path / "mined" / "pool.txt"
    result = mine(MineSettings("resnet20_cifar", str(pool_dir), str(eval_list), per_class=4, batch_size=64), out,
                  workers=0)
    assert result.complete and result.list_path == out
    summary = json.loads(output_paths(out)["summary"].read_text())
    assert summary["pool"]["near_duplicates"] == len(PLANTED) == result.duplicates
    pairs = {Path(e["pool"]).name: e["exclude"] for e in summary["duplicate_examples"]}
    assert pairs == {name: f"cifar10:test/{i}" for name, i in PLANTED.items()}
    assert summary["pool"]["undecodable"] == 1 and summary["undecodable_examples"][0].endswith("broken.jpg")
    unrelated = sorted((pool_dir / "train").rglob("*.png"))
    assert summary["pool"]["candidates"] == len(unrelated)  # every unrelated image was kept as a candidate
    selected = _entries(out)
    assert len(selected) == result.selected == sum(row["selected"] for row in summary["per_class"])
    _assert_top_k(selected, _independent_scores("resnet20_cifar", unrelated), 4)
    assert all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for png in result.plot_paths)
    assert {p.name for p in result.plot_paths} == {"pool.scores.png", "pool.duplicates.png"}
    assert not output_paths(out)["state"].exists() and not output_paths(out)["exclude"].exists()
    images = open_source(DataSource(f"list:{out}", labels=False))
    assert len(images) == len(selected) and (images.labels == -1).all()
    assert images.image(0).size == (32, 32)


def test_feature_mining_drops_close_copies(tmp_path: Path, pool_dir: Path, eval_list: Path) -> None:
    """ResNet-56's 64-d pooled features tell the exact and the re-encoded copy apart from unrelated images at the
    default cosine 0.99; the rescaled and shifted copy (cosine about 0.95) stays, as docs/mining.md reports."""
    out = tmp_path / "features.txt"
    settings = MineSettings("resnet56_cifar", str(pool_dir), str(eval_list), per_class=3, dedup="features")
    result = mine(settings, out, workers=0)
    summary = json.loads(output_paths(out)["summary"].read_text())
    pairs = {Path(e["pool"]).name: e["exclude"] for e in summary["duplicate_examples"]}
    assert pairs == {"exact_3.png": "cifar10:test/3", "brighter_7.jpg": "cifar10:test/7"}
    assert all(e["similarity"] >= 0.99 for e in summary["duplicate_examples"])
    assert summary["pool"]["candidates"] == len(list((pool_dir / "train").rglob("*.png"))) + 1
    assert not {"exact_3.png", "brighter_7.jpg"} & set(map(os.path.basename, _entries(out)))
    assert result.selected == len(_entries(out)) > 0


def test_min_score_and_cifar_entries(tmp_path: Path, cifar_pool: Path, eval_list: Path, packs: tuple) -> None:
    out = tmp_path / "confident.txt"
    settings = MineSettings("resnet20_cifar", str(cifar_pool), str(eval_list), per_class=1000, min_score=0.999)
    mine(settings, out, workers=0)
    selected = _entries(out)
    assert selected and all(e.startswith("cifar10:train/") for e in selected)
    train, _ = packs
    folder = tmp_path / "png"
    folder.mkdir()
    pool_indices = [int(line.split("/")[1]) for line in _entries(cifar_pool)]
    for i in pool_indices:
        train.image(i).save(folder / f"{i}.png")
    scores = _independent_scores("resnet20_cifar", [folder / f"{i}.png" for i in pool_indices])
    expected = {f"cifar10:train/{Path(p).stem}" for p, (s, _) in scores.items() if s >= 0.999}
    assert set(selected) == expected
    images = open_source(DataSource(f"list:{out}", labels=False))
    first = int(selected[0].split("/")[1])
    assert np.array_equal(np.asarray(images.image(0)), np.asarray(train.image(first)))


def test_stop_and_resume_gives_the_same_list(tmp_path: Path, cifar_pool: Path, eval_list: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    args = ["mine", "--teacher", "resnet20_cifar", "--pool", str(cifar_pool), "--exclude", str(eval_list),
            "--per-class", "7", "--batch-size", "32"]
    assert main([*args, "--out", str(tmp_path / "whole.txt"), "--workers", "2"]) == 0
    assert "mined 70 images from 300 pool images" in capsys.readouterr().out
    parts = tmp_path / "parts.txt"
    assert main([*args, "--out", str(parts), "--workers", "0", "--max-batches", "3", "--state-every", "1"]) == 0
    assert "stopped after 96 of 300 pool images" in capsys.readouterr().out
    assert not parts.exists() and MineState.load(output_paths(parts)["state"]).processed == 96
    assert main([*args, "--out", str(parts), "--workers", "0", "--max-batches", "2", "--resume"]) == 0
    assert MineState.load(output_paths(parts)["state"]).processed == 160
    assert main([*args, "--out", str(parts), "--workers", "0", "--resume"]) == 0
    assert parts.read_text() == (tmp_path / "whole.txt").read_text()
    assert not output_paths(parts)["state"].exists()


def test_resume_after_kill_gives_the_same_list(tmp_path: Path, cifar_pool: Path, eval_list: Path) -> None:
    args = [sys.executable, "-m", "ssld_zoo", "mine", "--teacher", "resnet20_cifar", "--pool", str(cifar_pool),
            "--exclude", str(eval_list), "--per-class", "5", "--batch-size", "8", "--workers", "0",
            "--state-every", "1"]
    killed = tmp_path / "killed.txt"
    state = output_paths(killed)["state"]
    process = subprocess.Popen(args + ["--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not (state.exists() and MineState.load(state).processed >= 16) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be interrupted"
    assert not killed.exists() and 16 <= MineState.load(state).processed < 300
    assert main(args[3:] + ["--out", str(killed), "--resume"]) == 0
    whole = tmp_path / "whole.txt"
    assert main(args[3:] + ["--out", str(whole)]) == 0
    assert killed.read_text() == whole.read_text()


def test_resume_refuses_other_settings_and_other_pool(tmp_path: Path, cifar_pool: Path, eval_list: Path) -> None:
    out, pool = tmp_path / "run.txt", tmp_path / "pool.txt"
    pool.write_text(cifar_pool.read_text())
    settings = MineSettings("resnet20_cifar", str(pool), str(eval_list), per_class=5, batch_size=32)
    with pytest.raises(MineError, match="nothing to resume"):
        mine(settings, out, resume=True)
    assert not mine(settings, out, workers=0, max_batches=1).complete
    with pytest.raises(MineError, match="holds an interrupted run; pass --resume"):
        mine(settings, out, workers=0)
    other = MineSettings("resnet20_cifar", str(pool), str(eval_list), per_class=6, batch_size=32)
    with pytest.raises(MineError, match=r"other settings \(per_class: 5 then, 6 now\)"):
        mine(other, out, resume=True)
    pool.write_text(cifar_pool.read_text() + "cifar10:train/1\n")
    with pytest.raises(MineError, match="holds other images now"):
        mine(settings, out, resume=True)


@pytest.mark.parametrize("dedup, threshold", [("phash", 64), ("phash", 2.5), ("phash", -1), ("features", 1.5),
                                              ("features", 0)])
def test_bad_threshold(tmp_path: Path, cifar_pool: Path, dedup: str, threshold: float) -> None:
    with pytest.raises(MineError, match=f"--threshold {threshold} is not a"):
        mine(MineSettings("resnet20_cifar", str(cifar_pool), "cifar10:test", 5, dedup=dedup, threshold=threshold),
             tmp_path / "x.txt")


def test_errors_are_one_line(tmp_path: Path, cifar_pool: Path, eval_list: Path,
                             capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="has no images"):
        mine(MineSettings("resnet20_cifar", str(empty), str(eval_list), 5), tmp_path / "a.txt")
    with pytest.raises(SsldZooError, match="neither a zoo model"):
        mine(MineSettings("no_such_teacher", str(cifar_pool), str(eval_list), 5), tmp_path / "b.txt")
    with pytest.raises(MineError, match="neither a folder of images"):
        mine(MineSettings("resnet20_cifar", str(tmp_path / "missing"), str(eval_list), 5), tmp_path / "c.txt")
    with pytest.raises(MineError, match="--pool-subset 'half' must be"):
        mine(MineSettings("resnet20_cifar", "cifar10:train", str(eval_list), 5, pool_subset="half"),
             tmp_path / "d.txt")
    assert main(["mine", "--teacher", "resnet20_cifar", "--pool", str(cifar_pool), "--exclude", str(eval_list),
                 "--per-class", "0", "--out", str(tmp_path / "e.txt")]) == 1
    assert capsys.readouterr().err == "ssld-zoo: error: --per-class must be at least 1, not 0.\n"


def test_a_truncated_mining_state_is_one_clear_error(tmp_path: Path) -> None:
    state = tmp_path / "state.npz"
    state.write_bytes(b"PK\x03\x04" + b"\x00" * 20)  # the start of a zip archive, cut off
    with pytest.raises(MineError, match="cannot read the mining state .* delete it and start over"):
        MineState.load(state)



def test_a_state_of_another_format_version_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.npz"
    MineState({"per_class": 5}, "f" * 64, num_classes=3, processed=7).save(state)
    assert MineState.load(state).processed == 7
    with np.load(state) as z:
        arrays = {name: z[name] for name in z.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["version"]  # as version 1 wrote it, with the pool fingerprint computed another way
    np.savez(state, **{**arrays, "meta": np.array(json.dumps(meta))})
    with pytest.raises(MineError, match="it is version 1, written by another ssld_zoo, and this one reads version 2; "
                                        "delete it and start over"):
        MineState.load(state)


def test_a_relative_pool_is_the_same_images_only_from_the_same_folder(tmp_path: Path, pool_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ssld_zoo.tools.mine import open_images
    for where in ("a", "b"):  # two folders, each with a `pool` holding the same files
        (tmp_path / where).mkdir()
        (tmp_path / where / "pool").symlink_to(pool_dir, target_is_directory=True)
    monkeypatch.chdir(tmp_path / "a")
    here = open_images("pool", None, None, "--pool")
    monkeypatch.chdir(tmp_path / "b")
    there = open_images("pool", None, None, "--pool")
    assert here.entry(0) == str(tmp_path / "a" / "pool" / Path(here.entry(0)).name)
    assert here.fingerprint() != there.fingerprint()  # so `--resume` from another folder is refused
    with pytest.raises(MineError, match="a mined list names image files or CIFAR-10 images"):
        open_images("shards:/data/train-{000..009}.tar", None, None, "--pool")
