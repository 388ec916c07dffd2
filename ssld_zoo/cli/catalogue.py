"""The catalogue commands: `list`, `info` and `recipes`. None of them imports torch."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `list`, `info` and `recipes`."""
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


def _status(available: bool, status: str, data_file: str | None) -> str:
    """A weight's availability in words."""
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
    """Print the models matching a pattern, one a line."""
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
    """Print one model's catalogue entry, as text or JSON."""
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
    """Print the shipped recipes with their descriptions."""
    from ssld_zoo.catalogue.shipped import list_recipes, recipes_dir
    from ssld_zoo.errors import SsldZooError
    from ssld_zoo.reading import read_yaml
    root = recipes_dir()
    names = list_recipes()
    width = max(len(n) for n in names)
    for name in names:
        try:
            raw = read_yaml(root / f"{name}.yaml", what="recipe")
        except SsldZooError:
            raw = None
        description = raw.get("description") if isinstance(raw, dict) else None
        print(f"{name:<{width}}  {description or ''}".rstrip())
    print(f"\n{len(names)} recipes in {root}; train one with `ssld-zoo train NAME [KEY=VALUE ...]`", file=sys.stderr)
