"""`ssld-zoo release`: the whole zoo, from PaddleClas's official files to pinned, verified weights on the Hub.

For each selected catalogue weight with a PaddleClas origin, in order (each step recorded before the next starts):

1. **download** the `.pdparams` (resumable, checked against the catalogue's `origin.sha256` when it pins one);
2. **convert** it with `ssld_zoo.convert` into a Hub-layout folder (byte-stable: the same file gives the same sha256);
3. **prove** the converted file with PaddleClas's own model and the real file (`convert.paddle_check`): logits and
   every feature stage within max|Δ|/max|ref| <= 1e-4, or the weight stops here with the report;
4. **evaluate** (with `--val DIR`) top-1/top-5 with PaddleClas's exact preprocessing; a weight more than
   `FLAG_POINTS` from PaddleClas's reported top-1 is flagged and held back (unless `--accept-flagged`);
5. **mirrors**: each Hub copy the catalogue lists (timm's own conversions) is pinned and compared with this
   conversion, tensor by tensor; the verdict is recorded, and only an `equal` mirror may ever be loaded;
6. **publish** the folder to `ORG/<name.tag>` and record the commit.

State lives in `STATE/<name.tag>/state.json` (one lock per state folder): a crash or Ctrl-C resumes at the step it
stopped in, and a released weight is skipped. Every run rewrites `STATE/catalogue-update.json`: what each finished
weight changes in the catalogue (hub revision, sha256, size, origin sha256, measured metrics, mirror verdicts,
status `published`), for a maintainer to review and apply with `ssld-zoo release --apply FILE`.
"""
from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ssld_zoo.errors import ReleaseError, SsldZooError
from ssld_zoo.version import __version__
from ssld_zoo.files import file_sha256, write_text_atomic
from ssld_zoo.reading import read_json
from ssld_zoo.catalogue.registry import HubFile, WeightEntry, iter_models

STEPS = ("download", "convert", "prove", "evaluate", "mirrors", "publish")
FLAG_POINTS = 0.3
MIRROR_RTOL = 1e-6
UPDATE_FILE = "catalogue-update.json"
UPDATE_SCHEMA = 1




@dataclass
class WeightRelease:
    """One weight's progress: the record of every finished step, and the failure that stopped it (if any)."""

    name: str
    done: dict[str, Any] = field(default_factory=dict)
    failure: dict[str, str] | None = None

    @property
    def released(self) -> bool:
        return "publish" in self.done

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "done": self.done, "failure": self.failure, "ssld_zoo": __version__}


def releasable(only: str = "*") -> list[WeightEntry]:
    """The catalogue weights with a PaddleClas origin whose `name.tag` (or model name) matches the fnmatch `only`."""
    chosen = [w for e in iter_models() for w in e.weights.values()
              if w.origin_url and w.data["origin"]["format"] == "pdparams"
              and (fnmatch.fnmatch(w.full_name, only) or fnmatch.fnmatch(w.model, only))]
    if not chosen:
        raise ReleaseError(f"--only '{only}' matches no weight with a PaddleClas origin; `ssld-zoo list` shows the "
                           "names (patterns such as 'hgnetv2_*' or 'resnet50d_ssld.ssld_in1k' work).")
    return chosen


@dataclass
class Release:
    """A release run: where its state lives, where it publishes, and what it checks."""

    state_dir: Path
    org: str | None
    val: Path | None = None
    labels: Path | None = None
    val_dataset: str = "imagenet-1k-val"
    check_paddle: bool = True
    accept_flagged: bool = False
    log: Callable[[str], None] = print

    def plan(self, weights: list[WeightEntry]) -> list[str]:
        """One line per weight: what is done and which steps remain (what `--dry-run` prints)."""
        lines = []
        for weight in weights:
            state = self._load(weight)
            todo = [s for s in self._steps() if s not in state.done]
            status = ("released, skipped" if state.released else
                      f"to do: {', '.join(todo)}" + (f" (stopped in {state.failure['step']}: {state.failure['reason']})"
                                                     if state.failure else ""))
            target = f"{self.org}/{weight.full_name}" if self.org else "(no --org)"
            lines.append(f"{weight.full_name} -> {target}: {status}")
        return lines

    def run(self, weights: list[WeightEntry]) -> dict[str, WeightRelease]:
        """Release each weight in turn (a failure stops that weight, not the others); write the catalogue update."""
        if self.org is None:
            raise ReleaseError("Name the Hub organisation to publish to with --org ORG (repos are ORG/<name.tag>).")
        from ssld_zoo.weights.publish import check_repo_id
        check_repo_id(f"{self.org}/{weights[0].full_name}")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        from filelock import FileLock, Timeout
        try:
            with FileLock(self.state_dir / ".lock", timeout=0):
                results = {w.full_name: self._release(w) for w in weights}
        except Timeout:
            raise ReleaseError(f"Another release is running with state folder {self.state_dir}; wait for it or "
                               "use another --state.") from None
        self.write_update()
        return results

    # -- one weight ---------------------------------------------------------------------------------------------------
    def _steps(self) -> tuple[str, ...]:
        return tuple(s for s in STEPS if s != "evaluate" or self.val is not None)

    def _folder(self, weight: WeightEntry) -> Path:
        return self.state_dir / weight.full_name

    def _load(self, weight: WeightEntry) -> WeightRelease:
        path = self._folder(weight) / "state.json"
        if not path.is_file():
            return WeightRelease(weight.full_name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return WeightRelease(weight.full_name, dict(data["done"]), data.get("failure"))
        except (OSError, ValueError, KeyError, TypeError):
            self.log(f"[release] {path} is damaged; {weight.full_name} starts again from the download")
            return WeightRelease(weight.full_name)

    def _save(self, weight: WeightEntry, state: WeightRelease) -> None:
        write_text_atomic(self._folder(weight) / "state.json", json.dumps(state.to_json(), indent=2) + "\n")

    def _release(self, weight: WeightEntry) -> WeightRelease:
        state = self._load(weight)
        if state.released:
            self.log(f"[release] {weight.full_name}: already released at {state.done['publish']['revision']}, "
                     "skipped")
            return state
        state.failure = None
        steps: dict[str, Callable[[WeightEntry, WeightRelease], dict[str, Any]]] = {
            "download": self._download, "convert": self._convert, "prove": self._prove, "evaluate": self._evaluate,
            "mirrors": self._mirrors, "publish": self._publish}
        for step in self._steps():
            if step in state.done:
                continue
            self.log(f"[release] {weight.full_name}: {step}")
            try:
                state.done[step] = steps[step](weight, state)
            except SsldZooError as e:
                state.failure = {"step": step, "reason": " ".join(str(e).split())}
                self._save(weight, state)
                self.log(f"[release] {weight.full_name}: stopped in {step}: {state.failure['reason']}")
                return state
            self._save(weight, state)
        self.log(f"[release] {weight.full_name}: released to {state.done['publish']['repo_id']} at "
                 f"{state.done['publish']['revision']}")
        return state

    def _pdparams(self, weight: WeightEntry) -> Path:
        assert weight.origin_url is not None
        return self._folder(weight) / weight.origin_url.rsplit("/", 1)[-1]

    def _download(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        from ssld_zoo.weights.download import download
        from ssld_zoo.errors import IntegrityError
        from ssld_zoo.convert.first_use import download_url
        assert weight.origin_url is not None
        path = self._pdparams(weight)
        if not path.is_file():
            download(download_url(weight.origin_url), path, size=weight.data["origin"].get("size"))
        sha256 = file_sha256(path)
        pinned = weight.origin_sha256
        if pinned and sha256 != pinned:
            path.unlink()
            raise IntegrityError(f"{weight.origin_url} gave a file with sha256 {sha256}, but the catalogue pins "
                                 f"{pinned}; the file was removed. If PaddleClas replaced it on purpose, update "
                                 "origin.sha256 after checking.")
        return {"url": weight.origin_url, "sha256": sha256, "size": path.stat().st_size}

    def _convert(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        from ssld_zoo.convert import convert_to_folder
        converted = convert_to_folder(self._pdparams(weight), weight.full_name, self._folder(weight) / "hub",
                                      origin_sha256=state.done["download"]["sha256"])
        return {"sha256": converted.sha256, "size": converted.size}

    def _converted_tensors(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        """The tensors of the converted folder's `model.safetensors`, checked against the recorded sha256."""
        from safetensors.torch import load_file

        from ssld_zoo.errors import IntegrityError
        path = self._folder(weight) / "hub" / "model.safetensors"
        if not path.is_file() or file_sha256(path) != state.done["convert"]["sha256"]:
            del state.done["convert"]
            raise IntegrityError(f"{path} is missing or changed since it was converted; the next run converts again.")
        return load_file(path)

    def _prove(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        from ssld_zoo.convert import paddle_check
        from ssld_zoo.convert.pdparams import read_pdparams
        if not self.check_paddle:
            return {"skipped": "--skip-paddle-check"}
        if not paddle_check.paddle_available():
            raise ReleaseError(f"Proving the conversion against PaddleClas needs paddlepaddle and paddleclas: "
                               f"{paddle_check.INSTALL_HINT}; or pass --skip-paddle-check to publish unproven "
                               "weights (not recommended).", weight=weight.full_name, step="prove")
        report = paddle_check.check_converted(read_pdparams(self._pdparams(weight)), weight.full_name,
                                              converted=self._converted_tensors(weight, state))
        if not report.passed:
            raise ReleaseError(f"{report.summary()}. The converter for '{weight.model}' is wrong for this file: "
                               "nothing was published. Fix the converter and run the release again.",
                               weight=weight.full_name, step="prove")
        self.log(f"[release] {report.summary()}")
        return {"worst_relative_error": report.worst, "outputs": len(report.errors)}

    def _evaluate(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        from ssld_zoo.tools.evaluate import evaluate
        assert self.val is not None
        result = evaluate(self._folder(weight) / "hub", self.val, labels_file=self.labels, preprocess="paddle")
        pre = result["preprocessing"]
        measured = {"dataset": self.val_dataset, "top1": round(result["top1"], 3), "top5": round(result["top5"], 3),
                    "input_size": pre["input_size"][-1], "crop_pct": pre["crop_pct"],
                    "interpolation": pre["interpolation"], "preprocess": "paddle", "images": result["images"]}
        reported = weight.data["metrics"]["paddle_reported"]
        if reported and abs(measured["top1"] - reported["top1"]) > FLAG_POINTS and not self.accept_flagged:
            gap = measured["top1"] - reported["top1"]
            raise ReleaseError(f"top-1 {measured['top1']:.2f}% on {self.val} is {gap:+.2f} "
                               f"points from PaddleClas's {reported['top1']}% (more than {FLAG_POINTS}); held back. "
                               "Check the validation set and preprocessing, or pass --accept-flagged.",
                               weight=weight.full_name, step="evaluate")
        return measured

    def _mirrors(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        verdicts = []
        tensors = None
        for mirror in weight.data.get("mirrors") or []:
            tensors = tensors if tensors is not None else self._converted_tensors(weight, state)
            verdicts.append(compare_mirror(mirror, tensors))
            self.log(f"[release] mirror {mirror['repo_id']}: {verdicts[-1]['verdict']} ({verdicts[-1]['detail']})")
        return {"verdicts": verdicts}

    def _publish(self, weight: WeightEntry, state: WeightRelease) -> dict[str, Any]:
        from ssld_zoo.weights.publish import publish_folder
        repo_id = f"{self.org}/{weight.full_name}"
        revision = publish_folder(self._folder(weight) / "hub", repo_id,
                                  commit_message=f"ssld_zoo {__version__}: {weight.full_name} converted from "
                                                 f"{weight.origin_url} "
                                                 f"(sha256 {state.done['download']['sha256'][:12]})")
        return {"repo_id": repo_id, "revision": revision}

    # -- the catalogue update -----------------------------------------------------------------------------------------
    def update(self) -> dict[str, Any]:
        """The catalogue changes of every released weight in the state folder."""
        weights: dict[str, Any] = {}
        for path in sorted(self.state_dir.glob("*/state.json")):
            try:
                done = json.loads(path.read_text(encoding="utf-8"))["done"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if "publish" not in done:
                continue
            change: dict[str, Any] = {
                "status": "published",
                "hub": {"repo_id": done["publish"]["repo_id"], "revision": done["publish"]["revision"],
                        "filename": "model.safetensors", "sha256": done["convert"]["sha256"],
                        "size": done["convert"]["size"]},
                "origin": {"sha256": done["download"]["sha256"], "size": done["download"]["size"]},
                "proof": done["prove"]}
            if "evaluate" in done:
                change["measured"] = done["evaluate"]
            if done.get("mirrors", {}).get("verdicts"):
                change["mirrors"] = done["mirrors"]["verdicts"]
            weights[path.parent.name] = change
        return {"schema": UPDATE_SCHEMA, "written": _now(), "ssld_zoo": __version__, "weights": weights}

    def write_update(self) -> Path:
        path = self.state_dir / UPDATE_FILE
        write_text_atomic(path, json.dumps(self.update(), indent=2) + "\n")
        return path


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def compare_mirror(mirror: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """Pin a Hub mirror at its current commit, download it, and compare it with this project's conversion, tensor
    by tensor: `equal` (same keys and shapes, every tensor within `MIRROR_RTOL` of its largest value) or `differs`
    (the differing tensors named, with the constant factor when one tensor is a multiple of the other, such as the
    x0.8 inference-dropout fold timm's copy does not make)."""
    from huggingface_hub import HfApi, constants
    from safetensors.torch import load_file

    from ssld_zoo.weights import hub
    try:
        revision = mirror.get("revision") or HfApi(endpoint=constants.ENDPOINT).model_info(
            mirror["repo_id"], revision="main").sha
    except Exception as e:  # the client's HTTP errors differ across its versions
        raise ReleaseError(f"Cannot read mirror repo '{mirror['repo_id']}' on {constants.ENDPOINT}: "
                           f"{' '.join(str(e).split())[:200]}") from e
    path = hub.hub_download(HubFile(mirror["repo_id"], mirror["filename"], revision, None, None))
    theirs = load_file(path)
    record = {"repo_id": mirror["repo_id"], "filename": mirror["filename"], "revision": revision,
              "sha256": file_sha256(path), "size": path.stat().st_size, "checked": _now()}
    differing = tensor_differences(ours, theirs)
    record["verdict"] = "equal" if not differing else "differs"
    record["detail"] = ("every tensor equal" if not differing else "; ".join(differing[:6])
                        + (f"; and {len(differing) - 6} more" if len(differing) > 6 else ""))
    return record


def tensor_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """What differs between two state dicts, one phrase per key (empty when they are equal)."""
    import torch
    found = [f"{key} only in this conversion" for key in sorted(set(ours) - set(theirs))]
    found += [f"{key} only in the mirror" for key in sorted(set(theirs) - set(ours))]
    for key in sorted(set(ours) & set(theirs)):
        a, b = ours[key].double(), theirs[key].double()
        if a.shape != b.shape:
            found.append(f"{key} shape {tuple(a.shape)} vs {tuple(b.shape)}")
            continue
        scale = float(a.abs().max()) if a.numel() else 0.0
        gap = float((a - b).abs().max()) if a.numel() else 0.0
        if gap <= MIRROR_RTOL * max(scale, 1e-12):
            continue
        ratio = float((a * b).sum() / (b * b).sum()) if float((b * b).sum()) > 0 else float("nan")
        if ratio == ratio and torch.allclose(a, ratio * b, rtol=1e-5, atol=1e-8 * max(scale, 1e-12)):
            found.append(f"{key} = {ratio:.4g} x the mirror's")
        else:
            found.append(f"{key} max|Δ| {gap:.3g}")
    return found


# -- applying an update -----------------------------------------------------------------------------------------------
def apply_update(update_file: str | os.PathLike, catalogue: Path | None = None) -> list[str]:
    """Write a reviewed `catalogue-update.json` into the catalogue (default: the checkout's built-in one), each entry
    validated before anything is written; returns the weights changed."""
    from ssld_zoo.errors import CatalogueError
    from ssld_zoo.catalogue.registry import BUILTIN_CATALOGUE, refresh, validate_model
    catalogue = catalogue or BUILTIN_CATALOGUE
    update = read_json(update_file, what="release update")
    if not isinstance(update, dict) or update.get("schema") != UPDATE_SCHEMA or not isinstance(update.get("weights"),
                                                                                              dict):
        raise ReleaseError(f"{update_file} is not a release update (schema {UPDATE_SCHEMA}, as `ssld-zoo release` "
                           "writes it).")
    doc = json.loads(catalogue.read_text(encoding="utf-8"))
    changed = []
    for full_name, change in update["weights"].items():
        model, _, tag = full_name.partition(".")
        try:
            weight = doc["models"][model]["weights"][tag]
            weight["status"] = change["status"]
            weight["hub"].update({k: change["hub"][k] for k in ("repo_id", "revision", "filename", "sha256", "size")})
            weight["origin"].update(sha256=change["origin"]["sha256"], size=change["origin"]["size"])
            if change.get("measured"):
                weight["metrics"]["measured"] = change["measured"]
            checked = {m["repo_id"]: m for m in change.get("mirrors") or []}
            weight["mirrors"] = [checked.get(m["repo_id"], m) for m in weight.get("mirrors") or []]
        except (KeyError, TypeError, AttributeError) as e:
            raise ReleaseError(f"{update_file}: the entry for '{full_name}' does not fit the catalogue "
                               f"({e!r}).") from e
        try:
            validate_model(model, doc["models"][model])
        except CatalogueError as e:
            raise ReleaseError(f"{update_file}: applying '{full_name}' would break the catalogue: {e}") from e
        changed.append(full_name)
    write_text_atomic(catalogue, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    refresh()
    return changed


# -- command line -----------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `release` command's arguments."""
    parser.add_argument("--org", metavar="ORG", help="Hub organisation or user to publish to (repos ORG/<name.tag>)")
    parser.add_argument("--only", default="*", metavar="PATTERN",
                        help="weights to release: fnmatch on NAME.TAG or NAME (default: every PaddleClas weight)")
    parser.add_argument("--state", type=Path, default=Path("release"), metavar="DIR",
                        help="per-weight state, downloads and converted folders (default: ./release); a rerun "
                             "resumes from it")
    parser.add_argument("--val", type=Path, metavar="DIR", help="ImageNet validation images (one folder per class, "
                        "or flat with --labels): top-1/top-5 with PaddleClas's exact preprocessing")
    parser.add_argument("--labels", type=Path, metavar="FILE", help="labels of a flat --val folder")
    parser.add_argument("--accept-flagged", action="store_true",
                        help=f"publish weights whose top-1 is more than {FLAG_POINTS} points from PaddleClas's")
    parser.add_argument("--skip-paddle-check", action="store_true",
                        help="publish without proving the conversion against PaddleClas (not recommended)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan: what is done, what remains")
    parser.add_argument("--apply", type=Path, metavar="FILE", help="apply a reviewed catalogue-update.json to the "
                        "checkout's catalogue (and regenerate its cards), then stop")


def run(args: argparse.Namespace) -> None:
    """Release as `args` say (or apply an update), printing one line per step."""
    if args.apply is not None:
        changed = apply_update(args.apply)
        print(f"applied {len(changed)} weight(s) to the catalogue: {', '.join(changed) or 'none'}")
        from ssld_zoo.weights.cards import main as regenerate
        from ssld_zoo.catalogue.registry import BUILTIN_CATALOGUE
        checkout = BUILTIN_CATALOGUE.parents[2]
        if (checkout / "README.md").is_file() and (checkout / "weights").is_dir():
            regenerate(checkout)
        return
    release = Release(args.state, args.org, val=args.val, labels=args.labels, check_paddle=not args.skip_paddle_check,
                      accept_flagged=args.accept_flagged)
    weights = releasable(args.only)
    if args.dry_run:
        print("\n".join(release.plan(weights)))
        return
    results = release.run(weights)
    failed = [name for name, r in results.items() if r.failure]
    print(f"released {sum(r.released for r in results.values())} of {len(results)}; catalogue update: "
          f"{args.state / UPDATE_FILE} (review it, then `ssld-zoo release --apply {args.state / UPDATE_FILE}`)")
    if failed:
        raise ReleaseError(f"{len(failed)} weight(s) stopped: {', '.join(failed)}; see the lines above, fix, and run "
                           "the same command again to resume.")
