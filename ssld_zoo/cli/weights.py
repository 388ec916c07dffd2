"""The weight-file commands: `download`, `convert` and `publish`."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `download`, `convert` and `publish`."""
    p = sub.add_parser("download", help="fetch weights into Hub-layout folders (for air-gapped machines)")
    p.add_argument("names", nargs="+", metavar="NAME")
    p.add_argument("--to", required=True, type=Path, help="destination folder")
    p.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")
    p.add_argument("--force", action="store_true", help="replace other weights already in a destination folder")
    p.set_defaults(func=_cmd_download)
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


def _cmd_download(args: argparse.Namespace) -> None:
    """Fetch each named weight into a Hub-layout folder under `--to`."""
    from ssld_zoo.weights.layout import download_folder
    for name in args.names:
        folder = download_folder(name, args.to, cache_dir=args.cache_dir, force=args.force)
        print(f"{name}: {folder}  (load with ssld_zoo.create('{name}', pretrained='{folder}'))")


def _cmd_convert(args: argparse.Namespace) -> None:
    """Convert a PaddleClas file and print what to record in the catalogue."""
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


def _cmd_publish(args: argparse.Namespace) -> None:
    """Upload a Hub-layout folder and print the commit to pin."""
    from huggingface_hub import constants
    from ssld_zoo.weights.publish import PUBLISHED_FILES, publish_folder
    commit = publish_folder(args.folder, args.repo, revision=args.revision, private=args.private,
                            commit_message=args.message)
    print(f"published to {constants.ENDPOINT}/{args.repo} (branch {args.revision or 'main'}):")
    for name in PUBLISHED_FILES:
        print(f"  {name}  {(args.folder / name).stat().st_size:,} bytes")
    print(f"revision: {commit}")
    print(f'Record it in the catalogue: "hub": {{"repo_id": "{args.repo}", "revision": "{commit}"}} (hub.revision).')
