"""The `ssld-zoo` command line. Argument parsing and printing only; each command calls one public function.

`list` and `info` never import torch.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ssld_zoo.console import run_parsed
from ssld_zoo.errors import SsldZooError


def _status(available: bool, status: str, data_file: str | None) -> str:
    if available:
        return "available"
    return "data file not found (set SSLD_ZOO_DATA)" if data_file else status


def _top1(weight_data: dict[str, Any]) -> str:
    """The weight's headline top-1, labelled by dataset: PaddleClas's ImageNet report, else what was measured here."""
    metrics = weight_data["metrics"]
    if metrics["paddle_reported"]:
        return f"ImageNet top-1 {metrics['paddle_reported']['top1']:.2f} (PaddleClas)"
    if metrics["measured"]:
        measured = metrics["measured"]
        return f"{measured['dataset']} top-1 {measured['top1']:.2f} (measured)"
    return "top-1 –"


def _cmd_list(args: argparse.Namespace) -> None:
    from ssld_zoo.catalogue.registry import get_model_entry, get_weight_entry, list_models
    names = list_models(args.pattern, pretrained=args.pretrained)
    if not names:
        print(f"no models match '{args.pattern}'" + (" with loadable weights" if args.pretrained else ""),
              file=sys.stderr)
    width = max((len(n) for n in names), default=0)
    for name in names:
        if args.pretrained:  # name.tag of every weight that loads now
            weight = get_weight_entry(name)
            print(f"{name:<{width}}  {get_model_entry(weight.model).architecture:<26} {_top1(weight.data)}")
            continue
        entry = get_model_entry(name)
        weight = entry.weight()
        status = _status(weight.available, weight.status, weight.data_file)
        print(f"{name:<{width}}  {entry.architecture:<26} {_top1(weight.data)}  {len(entry.weights)} weight(s)  "
              f"{status}")


def _cmd_info(args: argparse.Namespace) -> None:
    from ssld_zoo.catalogue.registry import model_info
    info = model_info(args.name)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    paddle = f"PaddleClas {info['paddle_name']}, " if info["paddle_name"] else ""
    from ssld_zoo.catalogue.registry import list_models
    kind = "zoo" if info["architecture"] in list_models() else "timm"  # the zoo's own are registered by name
    print(f"{info['name']}  ({paddle}{kind} architecture `{info['architecture']}`)")
    print(f"  params {info['num_params'] / 1e6:.2f} M, {info['gmacs']} GMACs, {info['num_classes']} classes")
    for tag, w in info["weights"].items():
        pre, rep, measured = w["preprocessing"], w["metrics"]["paddle_reported"], w["metrics"]["measured"]
        default = " (default)" if tag == info["default_weight"] else ""
        print(f"  weights {info['name']}.{tag}{default}: {_status(w['available'], w['status'], w.get('data_file'))}")
        if rep:
            print(f"    PaddleClas top-1 {rep['top1']} / top-5 {rep['top5']} at {rep['input_size']} px")
        if measured:
            print(f"    measured top-1 {measured['top1']} / top-5 {measured['top5']} on {measured['dataset']} at "
                  f"{measured['input_size']} px")
        source = pre.get("source")
        cited = (f" (resize {source['resize_short']} with {source['backend']}; {source['document']})" if source
                 else "")
        print(f"    preprocessing: {pre['input_size'][1]} px, crop_pct {pre['crop_pct']}, "
              f"{pre['interpolation']}{cited}")
        teacher = w["teacher"] or ("not documented" if info["paddle_name"] else "none")
        print(f"    teacher: {teacher}; hub: {w['hub']['repo_id']}@{w['hub']['revision'] or 'unpinned'}")
        print(f"    origin: {w['origin']['url'] if w['origin'] else '-'}")
        if w.get("data_file"):
            print(f"    data file: $SSLD_ZOO_DATA/{w['data_file']} (sha256 {w['origin']['sha256']})")
        for mirror in w.get("mirrors") or []:
            verdict = {None: "not checked yet: never loaded", "equal": "verified equal",
                       "differs": f"differs: {mirror['detail']}"}[mirror["verdict"]]
            print(f"    mirror: {mirror['repo_id']} ({verdict})")


def _cmd_recipes(args: argparse.Namespace) -> None:
    import yaml
    from ssld_zoo.catalogue.shipped import list_recipes, recipes_dir
    root = recipes_dir()
    names = list_recipes()
    width = max(len(n) for n in names)
    for name in names:
        try:
            description = (yaml.safe_load((root / f"{name}.yaml").read_text(encoding="utf-8")) or {}).get("description")
        except (OSError, yaml.YAMLError, AttributeError):
            description = None
        print(f"{name:<{width}}  {description or ''}".rstrip())
    print(f"\n{len(names)} recipes in {root}; train one with `ssld-zoo train NAME [KEY=VALUE ...]`", file=sys.stderr)


def _cmd_download(args: argparse.Namespace) -> None:
    from ssld_zoo.weights.layout import download_folder
    for name in args.names:
        folder = download_folder(name, args.to, cache_dir=args.cache_dir)
        print(f"{name}: {folder}  (load with ssld_zoo.create('{name}', pretrained='{folder}'))")


def _read_image(path: str):  # type: ignore[no-untyped-def]
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise SsldZooError(f"image '{path}' does not exist") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise SsldZooError(f"cannot read image '{path}': {e}") from None


def _cmd_predict(args: argparse.Namespace) -> None:
    import torch
    from ssld_zoo.models.factory import create
    from ssld_zoo.data.transforms import get_transform
    images = [_read_image(p) for p in args.images]
    model = create(args.name, pretrained=args.weights or True, cache_dir=args.cache_dir).eval()
    transform = get_transform(model)
    names = _class_names(args.name, model.num_classes)
    with torch.inference_mode():
        probs = model(torch.stack([transform(im) for im in images])).softmax(-1)
    for path, p in zip(args.images, probs):
        print(path)
        values, indices = p.topk(min(args.top, p.numel()))
        for value, index in zip(values.tolist(), indices.tolist()):
            print(f"  {value:6.2%}  {names(index)}")


def _class_names(name: str, num_classes: int) -> Callable[[int], str]:
    """Class index -> name for the dataset the catalogue says the weights were trained on (ImageNet-1k, CIFAR-10)."""
    from ssld_zoo.catalogue.registry import get_weight_entry
    try:
        weight = get_weight_entry(name)
        trained_on = " ".join(str(weight.data.get(k) or "") for k in ("training_data", "summary"))
    except SsldZooError:
        trained_on = ""
    if num_classes == 10 and "CIFAR-10" in trained_on:
        from ssld_zoo.data.cifar import CLASSES
        return lambda index: CLASSES[index]
    if num_classes == 1000:
        from timm.data import ImageNetInfo
        info = ImageNetInfo()
        return info.index_to_description
    return lambda index: f"class {index}"


def _cmd_publish(args: argparse.Namespace) -> None:
    from huggingface_hub import constants
    from ssld_zoo.weights.publish import PUBLISHED_FILES, publish_folder
    commit = publish_folder(args.folder, args.repo, revision=args.revision, private=args.private,
                            commit_message=args.message)
    print(f"published to {constants.ENDPOINT}/{args.repo} (branch {args.revision or 'main'}):")
    for name in PUBLISHED_FILES:
        print(f"  {name}  {(args.folder / name).stat().st_size:,} bytes")
    print(f"revision: {commit}")
    print(f'Record it in the catalogue: "hub": {{"repo_id": "{args.repo}", "revision": "{commit}"}} (hub.revision).')


def _cmd_convert(args: argparse.Namespace) -> None:
    from ssld_zoo.convert import convert_to_folder
    from ssld_zoo.catalogue.registry import get_weight_entry
    weight = get_weight_entry(args.model)
    result = convert_to_folder(args.paddle, weight.full_name, args.out)
    print(f"converted {args.paddle} -> {result.folder} ({weight.full_name}):")
    for name in ("model.safetensors", "config.json", "README.md"):
        print(f"  {name}  {(result.folder / name).stat().st_size:,} bytes")
    print(f"sha256: {result.sha256}\nsize: {result.size}\norigin sha256: {result.origin_sha256}")
    pinned = weight.data["origin"].get("sha256")
    if pinned and pinned != result.origin_sha256:
        print(f"note: the catalogue pins origin sha256 {pinned} for {weight.full_name}; this file differs.")
    print(f'Record in the catalogue: "hub": {{..., "sha256": "{result.sha256}", "size": {result.size}}}, '
          f'"origin": {{..., "sha256": "{result.origin_sha256}"}}; then `ssld-zoo publish {result.folder} '
          f'--repo {weight.hub.repo_id}`.')



def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ssld-zoo", description="SSLD-distilled backbones for PyTorch/timm.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="list models")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'mobilenet*'")
    p.add_argument("--pretrained", action="store_true", help="only models whose weights can be loaded now")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("info", help="show one model's catalogue entry")
    p.add_argument("name")
    p.add_argument("--json", action="store_true", help="print the whole entry as JSON")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("recipes", help="list the shipped training recipes (train one by name)")
    p.set_defaults(func=_cmd_recipes)
    p = sub.add_parser("download", help="fetch weights into Hub-layout folders (for air-gapped machines)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--to", required=True, type=Path, help="destination folder")
    p.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")
    p.set_defaults(func=_cmd_download)
    p = sub.add_parser("predict", help="top-k ImageNet classes for images")
    p.add_argument("name")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--weights", help="a .safetensors file, Hub-layout folder or hf-hub:org/name (default: catalogue)")
    p.add_argument("--top", type=_positive_int, default=5, help="classes to print per image (default 5)")
    p.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")
    p.set_defaults(func=_cmd_predict)
    p = sub.add_parser("convert", help="convert a PaddleClas .pdparams file into a Hub-layout folder")
    p.add_argument("--paddle", required=True, type=Path, metavar="FILE.pdparams", help="PaddleClas weights file")
    p.add_argument("--model", required=True, metavar="NAME", help="zoo model or weight (NAME or NAME.TAG)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created if missing)")
    p.set_defaults(func=_cmd_convert)
    p = sub.add_parser("publish", help="upload a Hub-layout folder and print the commit to pin")
    p.add_argument("folder", type=Path, metavar="DIR", help="model.safetensors + config.json + README.md")
    p.add_argument("--repo", required=True, metavar="ORG/NAME", help="model repo (created if missing)")
    p.add_argument("--revision", metavar="BRANCH", help="branch to commit to, created from main if missing "
                                                         "(default: main)")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its "
                                                          "visibility)")
    p.add_argument("--message", metavar="MSG", help="commit message")
    p.set_defaults(func=_cmd_publish)
    from ssld_zoo.train import command as train_command, demo, plot
    p = sub.add_parser("train", help="train a student from a recipe (SSLD distillation or supervised)")
    train_command.add_arguments(p)  # `main` hands `train` to the training command itself (overrides anywhere)
    p = sub.add_parser("plot", help="draw a training run's curves into RUN_DIR/curves.png")
    plot.add_arguments(p)
    p.set_defaults(func=plot.run)
    p = sub.add_parser("demo", help="label-free SSLD on real CIFAR-10 in a few CPU minutes")
    demo.add_arguments(p)
    p.set_defaults(func=demo.run)
    from ssld_zoo.tools import bench, evaluate, mine, onnx_export, release
    from ssld_zoo.train import cache
    for name, module, text in (
            ("release", release, "convert, prove, evaluate and publish the PaddleClas weights (a networked machine)"),
            ("eval", evaluate, "top-1/top-5 of a model on a validation folder or CIFAR-10 pack"),
            ("bench", bench, "latency and throughput of models on this machine (fp32/bf16, channels_last)"),
            ("export", onnx_export, "export a model to ONNX, checked against onnxruntime"),
            ("cache", cache, "run a recipe's teacher once and store its top-k soft labels for many students"),
            ("mine", mine, "pick the images a teacher is most confident about from an unlabeled pool")):
        p = sub.add_parser(name, help=text)
        module.add_arguments(p)
        p.set_defaults(func=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # its KEY=VALUE overrides may come after the options, which subparsers cannot parse
        from ssld_zoo.train.command import main as train_main
        return train_main(argv[1:], prog="ssld-zoo train")
    if argv[:1] == ["cache"]:  # the same for the cache command's recipe overrides
        from ssld_zoo.train.cache import main as cache_main
        return cache_main(argv[1:])
    args = build_parser().parse_args(argv)
    return run_parsed(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
