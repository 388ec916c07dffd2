"""The CIFAR-10 students that the repository's recipes produced ship in `weights/` and load offline; their catalogue
accuracy is what they measure on the real test images.

Each student is scored on a fixed 1,000-image subset of the 10,000 test images (the first 100 of each class), not on
all of them. The catalogue's number is the full test set's top-1 p; the subset's top-1 then lies within a binomial
spread of it: 1,000 images drawn without replacement from 10,000 whose top-1 is p have a standard deviation of
sqrt(p (1 - p) / 1000 * (10000 - 1000) / (10000 - 1)), about 1.1 points at p = 85%. The check allows 4 of them
(about 4.4 points); drawing by class only narrows the spread. A wrong weight file, a wrong architecture or the wrong
preprocessing costs far more than that (an untrained ResNet-20 scores 10%, akamaster's ResNet-20 81%, the shipped
students 79.6% to 86.2%).
"""
from __future__ import annotations

import math

import pytest

import ssld_zoo
from ssld_zoo.data.cifar import load_cifar10
from ssld_zoo.catalogue.registry import get_model_entry
from ssld_zoo.train.demo import accuracy, predict

STUDENTS = [f"resnet20_cifar.{tag}" for tag in get_model_entry("resnet20_cifar").weights
            if tag != "akamaster_cifar10"]


SUBSET = "per_class:100"
SUBSET_IMAGES, TEST_IMAGES, SIGMAS = 1000, 10000, 4


def binomial_tolerance(top1: float) -> float:
    """`SIGMAS` standard deviations, in points, of the top-1 of `SUBSET_IMAGES` test images drawn without
    replacement from the `TEST_IMAGES` whose top-1 is `top1` (%)."""
    p = top1 / 100
    variance = p * (1 - p) / SUBSET_IMAGES * (TEST_IMAGES - SUBSET_IMAGES) / (TEST_IMAGES - 1)
    return SIGMAS * 100 * math.sqrt(variance)


@pytest.fixture(scope="module")
def test_images():
    pack = load_cifar10("test")
    index = pack.indices(SUBSET)
    assert len(index) == SUBSET_IMAGES and len(pack.labels) == TEST_IMAGES
    return pack.decode_all(index), pack.labels[index]


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
    subset_top1 = accuracy(predict(model, images), labels)
    assert abs(subset_top1 - measured["top1"]) <= binomial_tolerance(measured["top1"]), (subset_top1, measured)

