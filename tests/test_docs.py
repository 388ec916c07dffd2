"""Generated documents stay current: the README model table, the recipe table and the model cards."""
from __future__ import annotations

from conftest import REPO_ROOT

from ssld_zoo.weights import cards

REGENERATE = "run `python -m ssld_zoo.weights.cards` and commit the result"


def test_readme_model_table_is_current():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == cards.readme_with_table(readme), f"README model table is stale: {REGENERATE}"


def test_recipe_table_is_current():
    doc = (REPO_ROOT / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert doc == cards.recipes_doc_with_table(doc, REPO_ROOT / "recipes"), f"docs/recipes.md is stale: {REGENERATE}"
    assert doc.count("| [`imagenet/") == len(list((REPO_ROOT / "recipes" / "imagenet").glob("*.yaml")))


def test_weights_cards_are_current_and_complete():
    expected = cards.weights_cards(REPO_ROOT / "weights")
    on_disk = set((REPO_ROOT / "weights").glob("*/README.md"))
    assert on_disk == set(expected), f"weights/ cards do not match the catalogue: {REGENERATE}"
    for path, text in expected.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: {REGENERATE}"


def test_card_carries_hub_metadata_and_citation():
    text = (REPO_ROOT / "weights" / "resnet50d_ssld.ssld_in1k" / "README.md").read_text(encoding="utf-8")
    front_matter = text.split("---")[1]
    assert "license: apache-2.0" in front_matter and "library_name: timm" in front_matter
    assert "ResNet50_vd_ssld_pretrained.pdparams" in text and "arXiv:2103.05959" in text
    assert "| PaddleClas (reported) | imagenet-1k-val | 83.0 | 96.4 | 224 | 0.875 | bilinear |" in text
