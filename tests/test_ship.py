"""`ssld-zoo ship`: a finished run becomes a catalogue weight (file, sha256, size, fp32 measurement, card, README
table) in a copy of the checkout, and `--publish` uploads it to the loopback Hub. The run here holds a shipped CIFAR
student with its recipe's eval set cut to 20 images per class; re-shipping all four students over the full test set
reproduces their catalogue entries exactly (docs/training.md, "Shipping a run")."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import ssld_zoo
from ssld_zoo.catalogue.registry import refresh
from ssld_zoo.cli import main
from ssld_zoo.errors import ShipError
from ssld_zoo.files import file_sha256
from ssld_zoo.tools.ship import ship

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED = "resnet20_cifar.ssld_r56_cifar10"
NEW = "resnet20_cifar.reshipped_cifar10"
pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of the checkout's catalogue, README, recipes and recipe doc, layered over the built-in catalogue."""
    root = tmp_path / "checkout"
    (root / "ssld_zoo" / "catalogue").mkdir(parents=True)
    (root / "docs").mkdir()
    shutil.copy(REPO_ROOT / "ssld_zoo" / "catalogue" / "catalogue.json", root / "ssld_zoo" / "catalogue")
    shutil.copy(REPO_ROOT / "README.md", root)
    shutil.copy(REPO_ROOT / "docs" / "recipes.md", root / "docs")
    shutil.copytree(REPO_ROOT / "recipes", root / "recipes")
    monkeypatch.setenv("SSLD_ZOO_CATALOGUE", str(root / "ssld_zoo" / "catalogue" / "catalogue.json"))
    refresh()
    yield root
    monkeypatch.delenv("SSLD_ZOO_CATALOGUE")
    refresh()


def finished_run(folder: Path, name: str) -> Path:
    """A run folder as `ssld-zoo train` leaves it: its recipe (eval cut to 20 images per class) and its student."""
    raw = yaml.safe_load((REPO_ROOT / "recipes" / "cifar10" / "b_ssld.yaml").read_text())
    raw["name"] = name
    raw["data"]["eval"] = {"source": "cifar10:test", "subset": "per_class:20"}
    (folder / name).mkdir(parents=True)
    (folder / "recipe.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(REPO_ROOT / "weights" / SHIPPED / "model.safetensors", folder / name)
    return folder


def expected_top1() -> float:
    """The shipped student's top-1 on those 200 images through `create` + timm's transform (the public path)."""
    from ssld_zoo.data.cifar import load_cifar10
    from ssld_zoo.data.subsets import subset_indices
    pack = load_cifar10("test")
    indices = subset_indices(pack.labels, "per_class:20", "test")
    weights = str(REPO_ROOT / "weights" / SHIPPED / "model.safetensors")
    model, transform = ssld_zoo.create(SHIPPED, pretrained=weights).eval(), ssld_zoo.get_transform(SHIPPED)
    with torch.inference_mode():
        logits = model(torch.stack([transform(pack.image(int(i))) for i in indices]))
    return round(100 * float((logits.argmax(-1) == torch.from_numpy(pack.labels[indices])).double().mean()), 2)


def test_ship_writes_the_weight_entry_card_and_table_and_publishes(checkout: Path, tmp_path: Path, fake_hub):
    run = finished_run(tmp_path / "run", NEW)
    assert main(["ship", str(run), "--checkout", str(checkout), "--publish", "my-org"]) == 0
    shipped = checkout / "weights" / NEW / "model.safetensors"
    entry = json.loads((checkout / "ssld_zoo/catalogue/catalogue.json").read_text())["models"]["resnet20_cifar"][
        "weights"]["reshipped_cifar10"]
    assert entry["hub"]["sha256"] == file_sha256(shipped) == file_sha256(REPO_ROOT / "weights" / SHIPPED /
                                                                        "model.safetensors")
    assert entry["hub"]["size"] == shipped.stat().st_size
    assert entry["status"] == "published" and entry["hub"]["repo_id"] == f"my-org/{NEW}"
    assert fake_hub.repos[f"my-org/{NEW}"].branches["main"] == entry["hub"]["revision"]
    measured = entry["metrics"]["measured"]
    assert measured["dataset"] == "cifar10-jpeg-q75-test (per_class:20)" and measured["input_size"] == 32
    assert measured["top1"] == expected_top1()
    assert entry["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert "`reshipped_cifar10`" in (checkout / "README.md").read_text()
    assert f"# {NEW}" in (checkout / "weights" / NEW / "README.md").read_text()


def test_ship_refuses_an_unfinished_run_and_a_name_not_in_the_catalogue(checkout: Path, tmp_path: Path):
    run = finished_run(tmp_path / "run", NEW)
    with pytest.raises(ShipError, match="not NAME.TAG with NAME a catalogue model"):
        ship(run, "no_such_model.tag", checkout=checkout)
    (run / NEW / "model.safetensors").unlink()
    with pytest.raises(ShipError, match="holds no finished student"):
        ship(run, checkout=checkout)
