"""The CIFAR-10 students that the repository's recipes produced ship in `weights/` and load offline; their catalogue
accuracy is what they measure on the real test images."""
from __future__ import annotations

import pytest

import ssld_zoo
from ssld_zoo.data.cifar import load_cifar10
from ssld_zoo.catalogue.registry import get_model_entry
from ssld_zoo.train.demo import accuracy, predict

STUDENTS = [f"resnet20_cifar.{tag}" for tag in get_model_entry("resnet20_cifar").weights
            if tag != "akamaster_cifar10"]


@pytest.fixture(scope="module")
def test_images():
    pack = load_cifar10("test")
    return pack.decode_all(), pack.labels


def test_every_cifar_recipe_has_a_shipped_student():
    recipes = {get_model_entry("resnet20_cifar").weight(n.split(".")[1]).data["recipe"] for n in STUDENTS}
    assert recipes == {f"recipes/cifar10/{r}.yaml" for r in
                       ("a_supervised", "b_ssld", "c_supervised_1k", "d_ssld_1k_unlabeled")}


@pytest.mark.parametrize("name", STUDENTS)
def test_shipped_student_loads_offline_and_measures_what_the_catalogue_says(name, test_images, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = ssld_zoo.create(name, pretrained=True)
    images, labels = test_images
    measured = get_model_entry("resnet20_cifar").weight(name.split(".")[1]).data["metrics"]["measured"]
    assert measured["dataset"] == "cifar10-jpeg-q75-test"
    assert accuracy(predict(model, images), labels) == pytest.approx(measured["top1"], abs=0.011)
