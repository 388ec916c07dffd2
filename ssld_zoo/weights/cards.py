"""Model cards and the model table, generated from the catalogue (no torch).

`python -m ssld_zoo.weights.cards` rewrites the README's model table, `weights/<name>.<tag>/README.md` and the
recipe table in `docs/recipes.md`; a test fails when the checked-in copies are stale.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ssld_zoo.catalogue.registry import ModelEntry, WeightEntry, iter_models, scale_size

CITATION = """@article{cui2021beyond,
  title   = {Beyond Self-Supervision: A Simple Yet Effective Network Distillation Alternative to Improve Backbones},
  author  = {Cui, Cheng and Guo, Ruoyu and Du, Yuning and He, Dongliang and Li, Fu and Wu, Zewu and Liu, Qiwen and
             Wen, Shilei and Huang, Jizhou and Hu, Xiaoguang and Yu, Dianhai and Ding, Errui and Ma, Yanjun},
  journal = {arXiv preprint arXiv:2103.05959},
  year    = {2021}
}"""
TABLE_START, TABLE_END = "<!-- model-table:start -->", "<!-- model-table:end -->"
RECIPES_START, RECIPES_END = "<!-- recipe-table:start -->", "<!-- recipe-table:end -->"
# catalogue metrics dataset -> (name in the card, Hugging Face dataset id, split)
DATASETS = {
    "imagenet-1k-val": ("ImageNet-1k validation", "imagenet-1k", "validation"),
    "cifar10-jpeg-q75-test": ("CIFAR-10 test re-encoded as JPEG q75 (YoongiKim)", "cifar10", "test"),
}


def _fmt(value: object, spec: str = "") -> str:
    return "–" if value is None else format(value, spec)


def _top1(weight: WeightEntry, kind: str) -> str:
    metrics = weight.data["metrics"][kind]
    return _fmt(metrics and metrics["top1"], ".2f")


def _status(weight: WeightEntry) -> str:
    """'available', 'data folder' or the catalogue status; never depends on this machine's data folder."""
    if weight.shipped or weight.on_hub:
        return "available"
    return "data folder" if weight.data_file else weight.status


def _dataset(dataset: str) -> tuple[str, str, str]:
    return DATASETS.get(dataset, (dataset, dataset, "test"))


def _gmacs(entry: ModelEntry, weight: WeightEntry) -> object:
    """MACs at the weight's own input size: its `gmacs` when it has one (e.g. a 320 px fine-tune), else the model's."""
    return weight.data.get("gmacs") or entry.data["gmacs"]


def _cited(pre: dict) -> str:
    source = pre.get("source")
    if not source:
        return ""
    return (f" (from `{source['document']}`, {source['key']}, at {source['ref']}: resize short side to "
            f"{source['resize_short']} with {source['backend']} {source['interpolation']}, crop {source['crop_size']})")


def model_table() -> str:
    """Markdown table of every model and weight in the catalogue."""
    rows = ["| model | weights | architecture | params (M) | GMACs | top-1 Paddle | top-1 measured | status |",
            "|---|---|---|---|---|---|---|---|"]
    for entry in iter_models():
        for tag, weight in entry.weights.items():
            params = entry.data["num_params"]
            rows.append(f"| `{entry.name}` | `{tag}`{' (default)' if tag == entry.default_weight else ''} | "
                        f"`{entry.architecture}` | {_fmt(params and params / 1e6, '.2f')} | "
                        f"{_fmt(_gmacs(entry, weight), '.2f')} | {_top1(weight, 'paddle_reported')} | "
                        f"{_top1(weight, 'measured')} | {_status(weight)} |")
    return "\n".join(rows)


def _model_index(weight: WeightEntry) -> list[str]:
    """Hugging Face `model-index` YAML lines with the reported and measured accuracies."""
    results = []
    for source, kind in (("PaddleClas reported", "paddle_reported"), ("ssld_zoo measured", "measured")):
        m = weight.data["metrics"][kind]
        if not m:
            continue
        metrics = [f'    - {{type: accuracy, name: "top-{k} ({source}, {m["input_size"]} px)", '
                   f'value: {m[f"top{k}"]}}}' for k in (1, 5) if m.get(f"top{k}") is not None]
        name, hub_id, split = _dataset(m["dataset"])
        results += ["  - task: {type: image-classification}",
                    f"    dataset: {{name: {name}, type: {hub_id}, split: {split}}}",
                    "    metrics:", *metrics]
    return ["model-index:", f"- name: {weight.full_name}", "  results:", *results] if results else []


def model_card(entry: ModelEntry, weight: WeightEntry) -> str:
    """A Hugging Face model card (YAML front matter + Markdown) for one weight."""
    pre, reported = weight.preprocessing, weight.data["metrics"]["paddle_reported"]
    measured, paddle = weight.data["metrics"]["measured"], entry.data["paddle_name"]
    datasets = sorted({_dataset(m["dataset"])[1] for m in (reported, measured) if m}) or ["imagenet-1k"]
    summary = weight.data.get("summary") or (f"{paddle or entry.name} distilled with SSLD (arXiv 2103.05959): the "
                                             "student learned from the teacher's predictions only, without labels in "
                                             "the loss.")
    status = _status(weight)
    if weight.data_file:
        status = f"read from the data folder, `$SSLD_ZOO_DATA/{weight.data_file}` (sha256-checked on every use)"
    lines = ["---", f"license: {weight.data['license']}", "library_name: timm",
             "tags:", "- image-classification", "- timm", "- ssld_zoo", "- knowledge-distillation",
             "- arxiv:2103.05959", "datasets:", *(f"- {d}" for d in datasets), "pipeline_tag: image-classification",
             *_model_index(weight), "---", "",
             f"# {weight.full_name}", "", summary, "",
             "## Model details", "",
             f"- **Architecture:** timm `{entry.architecture}`" + ("" if entry.is_stock_architecture
                                                                 else " (registered by `ssld_zoo`)"),
             f"- **Params (M):** {_fmt(entry.data['num_params'] and entry.data['num_params'] / 1e6, '.2f')}; "
             f"**GMACs:** {_fmt(_gmacs(entry, weight), '.2f')} at {pre['input_size'][1]}x{pre['input_size'][2]}",
             f"- **Teacher:** {weight.data['teacher'] or ('not documented by PaddleClas' if paddle else 'none')}",
             f"- **Training data:** {weight.data['training_data']}",
             f"- **Origin:** {weight.origin_url or 'trained by ssld_zoo'}",
             f"- **Recipe:** {weight.data['recipe'] or 'not yet written'}",
             f"- **Preprocessing:** resize the short side to {scale_size(pre['input_size'][1], pre['crop_pct'])} px "
             f"({pre['interpolation']}, crop_pct {pre['crop_pct']}), "
             f"center crop {pre['input_size'][1]}, mean {pre['mean']}, std {pre['std']}" + _cited(pre),
             f"- **Status:** {status}", ""]
    if weight.data.get("notes"):
        lines += [f"> {weight.data['notes']}", ""]
    lines += ["## Metrics", "", "| source | dataset | top-1 | top-5 | resolution | crop_pct | interpolation |",
              "|---|---|---|---|---|---|---|"]
    rows = [("PaddleClas (reported)", reported)] if paddle else []
    for label, m in (*rows, ("ssld_zoo (measured)", measured)):
        if m:
            lines.append(f"| {label} | {m['dataset']} | {m['top1']} | {_fmt(m['top5'])} | {m['input_size']} | "
                         f"{m['crop_pct']} | {m['interpolation']} |")
        else:
            lines.append(f"| {label} | – | – | – | – | – | – |")
    lines += ["", "## Usage", ""]
    if weight.data_file:
        lines += [f"The weights are read in place from the data folder: set `SSLD_ZOO_DATA` (or pass `data_root=`) to "
                  f"a folder holding `{weight.data_file}` (from {weight.origin_url}).", ""]
    lines += ["```python", "import ssld_zoo",
              f"model = ssld_zoo.create(\"{weight.full_name}\", pretrained=True).eval()",
              f"transform = ssld_zoo.get_transform(\"{weight.full_name}\")", "```", ""]
    if entry.is_stock_architecture:
        lines += ["Without ssld_zoo installed, timm loads the Hub copy directly:", "", "```python", "import timm",
                  f"model = timm.create_model(\"hf-hub:{weight.hub.repo_id}\", pretrained=True).eval()", "```", ""]
    lines += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    return "\n".join(lines)


def weights_cards(root: Path) -> dict[Path, str]:
    """The card of every catalogue weight, keyed by its path under `root` (the checkout's `weights/`)."""
    return {root / weight.full_name / "README.md": model_card(entry, weight)
            for entry in iter_models() for weight in entry.weights.values()}


def _replace_between(text: str, start: str, end: str, table: str) -> str:
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {start} ... {end} markers")
    return pattern.sub(lambda _: f"{start}\n{table}\n{end}", text)


def readme_with_table(readme: str) -> str:
    """`readme` with the text between the model-table markers replaced by the current table."""
    return _replace_between(readme, TABLE_START, TABLE_END, model_table())


def recipe_table(recipes: Path) -> str:
    """One row per recipe file under `recipes` (imagenet/, cifar10/): student, teacher, loss, stages, data."""
    from ssld_zoo.reading import read_yaml
    rows = ["| recipe | student | teacher | loss | stages (epochs @ lr) | batch | unlabeled data | reported top-1 |",
            "|---|---|---|---|---|---|---|---|"]
    for path in sorted(recipes.glob("*/*.yaml")):
        raw = read_yaml(path, what="recipe")
        teacher = f"`{raw['teacher']['model']}`" if raw.get("teacher") else "– (supervised)"
        stages = ", ".join(f"{s['epochs']} @ {s['lr']}" for s in raw["stages"])
        unlabeled = sorted({t["source"].split(":", 1)[0] + (f" ({t['subset']})" if t.get("subset") else "")
                            for s in raw["stages"] for t in s["train"] if t.get("labels") is False})
        reported = ((raw.get("reference") or {}).get("reported_top1") or {}).get("weight")
        rows.append(f"| [`{path.parent.name}/{path.name}`](../recipes/{path.parent.name}/{path.name}) | "
                    f"`{raw['student']['model']}` | {teacher} | {raw['loss']['type']} | {stages} | "
                    f"{raw['batch_size']} | {', '.join(unlabeled) or '–'} | {_fmt(reported)} |")
    return "\n".join(rows)


def recipes_doc_with_table(doc: str, recipes: Path) -> str:
    """`docs/recipes.md` with its recipe table replaced by the current one."""
    return _replace_between(doc, RECIPES_START, RECIPES_END, recipe_table(recipes))


def main(checkout: Path = Path(__file__).resolve().parents[2]) -> None:
    from ssld_zoo.files import write_text_atomic
    readme = checkout / "README.md"
    write_text_atomic(readme, readme_with_table(readme.read_text(encoding="utf-8")))
    for path, text in weights_cards(checkout / "weights").items():
        write_text_atomic(path, text)
    recipes_doc = checkout / "docs" / "recipes.md"
    recipes_text = recipes_doc_with_table(recipes_doc.read_text(encoding="utf-8"), checkout / "recipes")
    write_text_atomic(recipes_doc, recipes_text)
    print(f"updated {readme}, {recipes_doc} and {len(weights_cards(checkout / 'weights'))} cards", file=sys.stderr)


if __name__ == "__main__":
    main()
