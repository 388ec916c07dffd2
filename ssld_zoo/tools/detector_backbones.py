"""Zoo weights as the backbone files detectors load (`ssld-zoo backbone NAME[.TAG] --for LAYOUT --out DIR`).

RT-DETR, RT-DETRv2, D-FINE, DEIM and DEIMv2 train on the SSLD weights of ResNet_vd and PP-HGNetV2, each in its own
key layout and under a fixed file name; transformers' detectors take a backbone folder. `export_backbone` takes a
weight through the same verified path as `create(pretrained=...)` and writes it in the consumer's keys:

- `presnet`: `PResNet` (RT-DETR v1/v2, DEIM, libreyolo) takes `resnet34d_ssld`, `resnet50d_ssld`, `resnet101d_ssld`
  as `ResNet{34,50,101}_vd[_ssld[_v2]]_pretrained_from_paddle.pth`;
- `hgnetv2-dfine`: `HGNetv2` (D-FINE, DEIM, DEIMv2, pydfine) takes `hgnetv2_b0_ssld` ... `b6` as
  `PPHGNetV2_B{0..6}_stage1.pth`;
- `hgnetv2-rtdetrv2`: `HGNetv2` (RT-DETRv2 L/X/H, PaddleDetection names) takes `hgnetv2_b4_ssld` ... `b6` as
  `PPHGNetV2_{L,X,H}_ssld_pretrained_from_paddle.pth`;
- `hf`: transformers' `RTDetrResNetBackbone` / `HGNetV2Backbone` take all of them as `config.json` +
  `model.safetensors`.

The `.pth` layouts are plain tensor dicts (`torch.load(weights_only=True)` reads them) without the classifier and
without BatchNorm's `num_batches_tracked` (which the official files lack and some `FrozenBatchNorm2d` copies refuse),
written beside the same tensors as `.safetensors`. Every export gets a README.md naming its source, the proof and the
config values that fit. The proof is tests/test_detector_backbones.py: each layout loads strictly into the consumer's
own class from the package registry and returns the zoo's features (docs/detection.md).
"""
from __future__ import annotations

import argparse
import io
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ssld_zoo.errors import ConversionError, DetectorBackboneError, FileSystemError, MissingDependencyError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["LAYOUTS", "BackboneExport", "export_backbone", "fitting_weights"]

LAYOUTS = {
    "presnet": "RT-DETR v1/v2 and DEIM PResNet",
    "hgnetv2-dfine": "D-FINE, DEIM and DEIMv2 HGNetv2",
    "hgnetv2-rtdetrv2": "RT-DETRv2 HGNetv2 L/X/H, PaddleDetection names",
    "hf": "transformers backbones: RTDetrResNetBackbone, HGNetV2Backbone",
}
PRESNET_FILES = {18: "ResNet18_vd_pretrained_from_paddle.pth", 34: "ResNet34_vd_pretrained_from_paddle.pth",
                 50: "ResNet50_vd_ssld_v2_pretrained_from_paddle.pth",
                 101: "ResNet101_vd_ssld_pretrained_from_paddle.pth"}
RTDETRV2_SIZES = {4: "L", 5: "X", 6: "H"}  # RT-DETRv2's HGNetv2 names for PP-HGNetV2 B4/B5/B6
HF_FILES = ("config.json", "model.safetensors")
# The tag the consumer's own file holds, when NAME comes without one (else the catalogue's default weight).
PREFERRED_TAGS = {"presnet": ("ssld_v2_in1k",), "hgnetv2-dfine": ("ssld_stage1_in22k_in1k",),
                  "hgnetv2-rtdetrv2": ("ssld_stage2_ft_in1k",)}  # RT-DETRv2: PaddleClas's *_ssld_pretrained
PROOF_TEST = "tests/test_detector_backbones.py"


@dataclass(frozen=True)
class Family:
    """A zoo weight's backbone family: `resnet_vd` with its depth, or `hgnetv2` with its B size."""

    kind: str
    size: int

    @property
    def title(self) -> str:
        return f"ResNet{self.size}_vd" if self.kind == "resnet_vd" else f"PP-HGNetV2-B{self.size}"

    @property
    def use_lab(self) -> bool:
        return self.kind == "hgnetv2" and self.size <= 3


def family_of(model_data: dict[str, Any]) -> Family | None:
    """The family of a catalogue model entry, from its PaddleClas name (None: no detector layout fits it)."""
    paddle_name = str(model_data.get("paddle_name") or "")
    if model_data.get("family") == "resnet_vd" and (m := re.fullmatch(r"ResNet(\d+)_vd", paddle_name)):
        return Family("resnet_vd", int(m[1])) if int(m[1]) in PRESNET_FILES else None
    if model_data.get("family") == "pp_hgnet_v2" and (m := re.fullmatch(r"PPHGNetV2_B([0-6])", paddle_name)):
        return Family("hgnetv2", int(m[1]))
    return None


def _fits(layout: str, family: Family | None) -> bool:
    if family is None:
        return False
    return {"presnet": family.kind == "resnet_vd", "hgnetv2-dfine": family.kind == "hgnetv2",
            "hgnetv2-rtdetrv2": family.kind == "hgnetv2" and family.size in RTDETRV2_SIZES,
            "hf": True}[layout]


def fitting_weights(layout: str) -> list[str]:
    """The catalogue's models whose weights the layout takes."""
    from ssld_zoo.catalogue.registry import iter_models
    _check_layout(layout)
    return [entry.name for entry in iter_models() if _fits(layout, family_of(entry.data))]


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise DetectorBackboneError(f"Unknown backbone layout '{layout}'. Use one of: "
                                    + "; ".join(f"{name} ({what})" for name, what in LAYOUTS.items()) + ".", key=layout)


# --- key maps: timm names (the zoo's models) -> the consumer's names; None = no place in the layout ---

_PRESNET_STEM = {"0": "conv1_1.conv", "1": "conv1_1.norm", "3": "conv1_2.conv", "4": "conv1_2.norm",
                 "6": "conv1_3.conv"}
_HF_RESNET_STEM = {"0": "0.convolution", "1": "0.normalization", "3": "1.convolution", "4": "1.normalization",
                   "6": "2.convolution"}


def _resnet_key(key: str, *, stem: dict[str, str], last_norm: str, block: Callable[[int, str], str],
                branch: Callable[[int, str], str], shortcut: Callable[[int, str], str],
                conv: str, norm: str) -> str | None:
    """One ResNet-vd key in a consumer's names; `block(stage, index)`, `branch(n, kind)`, `shortcut(stage, kind)`
    give the consumer's prefixes (stage counted from 0, branch from 1)."""
    if m := re.fullmatch(r"conv1\.(\d)\.(\w+)", key):
        return f"{stem[m[1]]}.{m[2]}" if m[1] in stem else None
    if m := re.fullmatch(r"bn1\.(\w+)", key):
        return f"{last_norm}.{m[1]}"
    if m := re.fullmatch(r"layer([1-4])\.(\d+)\.(conv|bn)([123])\.(\w+)", key):
        kind = conv if m[3] == "conv" else norm
        return f"{block(int(m[1]) - 1, m[2])}.{branch(int(m[4]), kind)}.{m[5]}"
    if m := re.fullmatch(r"layer([1-4])\.(\d+)\.downsample\.([12])\.(\w+)", key):
        stage = int(m[1]) - 1
        return f"{block(stage, m[2])}.{shortcut(stage, conv if m[3] == '1' else norm)}.{m[4]}"
    return None


def presnet_key(key: str) -> str | None:
    """timm ResNet-vd -> PResNet (`conv1.conv1_1.conv`, `res_layers.i.blocks.j.branch2a.norm`, `short[.conv]`)."""
    return _resnet_key(key, stem={k: f"conv1.{v}" for k, v in _PRESNET_STEM.items()}, last_norm="conv1.conv1_3.norm",
                       block=lambda stage, j: f"res_layers.{stage}.blocks.{j}",
                       branch=lambda n, kind: f"branch2{'abc'[n - 1]}.{kind}",
                       shortcut=lambda stage, kind: f"short.{kind}" if stage == 0 else f"short.conv.{kind}",
                       conv="conv", norm="norm")


def hf_resnet_key(key: str) -> str | None:
    """timm ResNet-vd -> transformers RTDetrResNetBackbone (`embedder.embedder.0.convolution`,
    `encoder.stages.i.layers.j.layer.k.normalization`, `shortcut[.1]`)."""
    return _resnet_key(key, stem={k: f"embedder.embedder.{v}" for k, v in _HF_RESNET_STEM.items()},
                       last_norm="embedder.embedder.2.normalization",
                       block=lambda stage, j: f"encoder.stages.{stage}.layers.{j}",
                       branch=lambda n, kind: f"layer.{n - 1}.{kind}",
                       shortcut=lambda stage, kind: f"shortcut.{kind}" if stage == 0 else f"shortcut.1.{kind}",
                       conv="convolution", norm="normalization")


def dfine_key(key: str) -> str | None:
    """timm PP-HGNetV2 -> D-FINE's HGNetv2: the same names (the classifier is dropped before)."""
    return key if key.startswith(("stem.", "stages.")) else None


def rtdetrv2_key(key: str) -> str | None:
    """timm PP-HGNetV2 -> RT-DETRv2's HGNetv2: stem2a/2b convs sit behind a ZeroPad2d (`conv.1`), and the
    aggregation convs have PaddleDetection's flat names."""
    if not key.startswith(("stem.", "stages.")):
        return None
    key = re.sub(r"^stem\.(stem2[ab])\.conv\.weight$", r"stem.\1.conv.1.weight", key)
    return key.replace(".aggregation.0.", ".aggregation_squeeze_conv.").replace(
        ".aggregation.1.", ".aggregation_excitation_conv.")


def hf_hgnetv2_key(key: str) -> str | None:
    """timm PP-HGNetV2 -> transformers HGNetV2Backbone (`embedder.*`, `encoder.stages.*`, `convolution`,
    `normalization`)."""
    if not key.startswith(("stem.", "stages.")):
        return None
    key = "embedder." + key[len("stem."):] if key.startswith("stem.") else "encoder." + key
    return key.replace(".conv.", ".convolution.").replace(".bn.", ".normalization.")


# --- what each layout writes and the config values that fit ---

@dataclass(frozen=True)
class Target:
    """One layout for one family: the file the consumer looks for, its key map and the config values that fit."""

    layout: str
    family: Family
    filename: str
    rename: Callable[[str], str | None]
    keep_batch_counts: bool
    return_idx: tuple[int, ...]
    channels: tuple[int, ...]
    config: tuple[str, ...]  # README lines: the consumer's config values that fit
    place: str  # README line: where the consumer looks for the file


def _stage_channels(family: Family) -> tuple[int, ...]:
    """Output channels of the four stages."""
    if family.kind == "resnet_vd":
        return (64, 128, 256, 512) if family.size < 50 else (256, 512, 1024, 2048)
    return tuple(stage[2] for stage in _hgnetv2_stages(family))


def _hgnetv2_cfg(family: Family) -> dict[str, Any]:
    """timm's architecture table of this PP-HGNetV2 size (stem channels, `stage1`..`stage4` rows)."""
    from timm.models.hgnet import model_cfgs
    return dict(model_cfgs[f"hgnetv2_b{family.size}"])


def _hgnetv2_stages(family: Family) -> list[list[Any]]:
    """timm's stage rows: in, mid, out channels, blocks, downsample, light block, kernel size, layers."""
    cfg = _hgnetv2_cfg(family)
    return [list(cfg[f"stage{i}"]) for i in range(1, 5)]


def target_for(layout: str, weight: str, model_data: dict[str, Any]) -> Target:
    """The target of `layout` for a weight whose catalogue model entry is `model_data`; a family that does not fit
    is a `DetectorBackboneError` listing what fits."""
    _check_layout(layout)
    family = family_of(model_data)
    if not _fits(layout, family):
        fits = ", ".join(fitting_weights(layout))
        raise DetectorBackboneError(f"'{weight}' does not fit the {layout} layout ({LAYOUTS[layout]}); the weights "
                                    f"that fit are: {fits}.", weight=weight, key=layout)
    assert family is not None
    channels = _stage_channels(family)
    return_idx = (1, 2, 3)
    used = [channels[i] for i in return_idx]
    if layout == "presnet":
        return Target(layout, family, PRESNET_FILES[family.size], presnet_key, False, return_idx, channels, (
            f"PResNet: depth: {family.size}, variant: d, return_idx: {list(return_idx)}, pretrained: True",
            "freeze_at: 0, freeze_norm: True (RT-DETR's R50/R101 configs; its R18/R34 configs use -1 / False)",
            f"returned channels {used} at strides [8, 16, 32] (encoder in_channels)"),
            "RT-DETR v1/v2: the torch.hub cache (`$TORCH_HOME/hub/checkpoints/`, by default "
            "`~/.cache/torch/hub/checkpoints/`), where `load_state_dict_from_url` finds it and downloads nothing; "
            "RT-DETRv2 also takes `pretrained: /path/to/the/file.pth`. DEIM: the folder named by `local_model_dir` "
            "(DEIM joins folder and name without a slash, so end the folder with `/`).")
    if layout == "hgnetv2-dfine":
        size = f"B{family.size}"
        return Target(layout, family, f"PPHGNetV2_{size}_stage1.pth", dfine_key, False, return_idx, channels, (
            f"HGNetv2: name: {size}, use_lab: {family.use_lab}, return_idx: {list(return_idx)} (D-FINE N: [2, 3]), "
            "pretrained: True",
            "freeze_at: -1, freeze_norm: False (D-FINE N/S/M configs, B0/B2); freeze_stem_only: True, freeze_at: 0, "
            "freeze_norm: True (L/X configs, B4/B5)",
            f"returned channels {used} at strides [8, 16, 32] (encoder in_channels)"),
            "D-FINE: `weight/hgnetv2/` under the folder you train from (its `local_model_dir`); DEIM and DEIMv2: "
            "the folder named by `local_model_dir` in `configs/base/dfine_hgnetv2.yml`. Loaded strictly, so "
            f"`use_lab` must be {family.use_lab} for {size}.")
    if layout == "hgnetv2-rtdetrv2":
        size = RTDETRV2_SIZES[family.size]
        return Target(layout, family, f"PPHGNetV2_{size}_ssld_pretrained_from_paddle.pth", rtdetrv2_key, False,
                      return_idx, channels, (
                          f"HGNetv2: name: {size}, use_lab: False, return_idx: {list(return_idx)}, pretrained: True",
                          "freeze_at: 0, freeze_norm: True (RT-DETRv2's HGNetv2 L/X configs)",
                          f"returned channels {used} at strides [8, 16, 32] (encoder in_channels)"),
                      "The torch.hub cache (`$TORCH_HOME/hub/checkpoints/`, by default "
                      "`~/.cache/torch/hub/checkpoints/`), where `load_state_dict_from_url` finds it, or "
                      "`pretrained: /path/to/the/file.pth`.")
    rename = hf_resnet_key if family.kind == "resnet_vd" else hf_hgnetv2_key
    kind = "RTDetrResNetBackbone" if family.kind == "resnet_vd" else "HGNetV2Backbone"
    detector = "RTDetrForObjectDetection" if family.kind == "resnet_vd" else "DFineForObjectDetection"
    return Target(layout, family, "model.safetensors", rename, True, return_idx, channels, (
        f"`{kind}.from_pretrained(DIR)` builds the backbone, returning stage2-stage4 (`out_indices` [2, 3, 4]): "
        f"channels {used} at strides [8, 16, 32]",
        f"in a detector: `{detector.replace('ForObjectDetection', 'Config')}(backbone_config=AutoConfig."
        f"from_pretrained(DIR), encoder_in_channels={used}, ...)`, then load the weights into "
        "`detector.model.backbone.model` (docs/detection.md)",
        "freeze_backbone_batch_norms: True (the detectors' default) freezes the backbone's BatchNorm"),
        f"Any folder: `{kind}.from_pretrained(DIR)`, or `AutoConfig.from_pretrained(DIR)` for a detector's "
        "`backbone_config`. (transformers 5.25's `AutoBackbone.from_pretrained` asks the Hub whether a path is a repo "
        "id before it reads the folder, and fails offline or on an absolute path.)")


# --- export ---

@dataclass(frozen=True)
class BackboneExport:
    """What `export_backbone` wrote: the folder, the files in it, the source weight and the consumer's layout."""

    folder: Path
    files: tuple[Path, ...]
    layout: str
    weight: str
    num_tensors: int


def consumer_state_dict(state: dict[str, torch.Tensor], target: Target) -> dict[str, torch.Tensor]:
    """The zoo model's state dict in the consumer's keys: the classifier dropped, `num_batches_tracked` dropped
    unless the layout keeps it, every other key renamed (a key with no place, or two keys on one name, is a
    `ConversionError`)."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith(("fc.", "head.")) or (key.endswith("num_batches_tracked") and not target.keep_batch_counts):
            continue
        new = target.rename(key)
        if new is None or new in out:
            problem = "has no place" if new is None else f"lands on '{new}' twice"
            raise ConversionError(f"Key '{key}' {problem} in the {target.layout} layout of "
                                  f"{target.family.title}; the model is not the architecture this layout expects.",
                                  key=key)
        out[new] = tensor.detach().to("cpu").clone().contiguous()
    return out


def _hf_config(family: Family) -> Any:
    """The transformers backbone config of `family`, returning stage2-stage4."""
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError("The hf layout needs transformers: pip install transformers",
                                     package="transformers") from e
    out_features = ["stage2", "stage3", "stage4"]
    if family.kind == "resnet_vd":
        depths = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}[family.size]
        return transformers.RTDetrResNetConfig(
            embedding_size=64, hidden_sizes=list(_stage_channels(family)), depths=depths,
            layer_type="basic" if family.size < 50 else "bottleneck", downsample_in_bottleneck=False,
            out_features=out_features)  # type: ignore[call-arg]  # a property setter
    stem = list(_hgnetv2_cfg(family)["stem_chs"])
    stages = _hgnetv2_stages(family)

    def column(i: int) -> list[Any]:
        """One column of timm's stage table."""
        return [stage[i] for stage in stages]
    return transformers.HGNetV2Config(
        stem_channels=[3, *stem], stage_in_channels=column(0), stage_mid_channels=column(1),
        stage_out_channels=column(2), stage_num_blocks=column(3), stage_downsample=column(4),
        stage_light_block=column(5), stage_kernel_size=column(6), stage_numb_of_layers=column(7),
        embedding_size=stem[1], hidden_sizes=column(2), depths=column(3),
        use_learnable_affine_block=family.use_lab, out_features=out_features)  # type: ignore[call-arg]


def _check_hf_load(config: Any, state: dict[str, torch.Tensor], target: Target) -> None:
    """Load `state` strictly into the transformers backbone `config` builds (a mismatch is a `ConversionError`)."""
    import torch
    from transformers import AutoBackbone
    with torch.device("meta"):
        backbone = AutoBackbone.from_config(config)
    try:
        backbone.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        raise ConversionError(f"{target.family.title} does not load strictly into transformers' "
                              f"{type(backbone).__name__}: {str(e).splitlines()[0]}") from e


def _pth_bytes(state: dict[str, torch.Tensor]) -> bytes:
    import torch
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _write_safetensors(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Byte-stable safetensors through a temporary file."""
    from ssld_zoo.files import atomic_path, save_safetensors
    with atomic_path(path) as tmp:
        save_safetensors(state, tmp, metadata)


def _identity(weight: str, pretrained: bool | str | os.PathLike) -> dict[str, str]:
    """What the README says about the source: `name.tag`, sha256 and origin for a catalogue weight; the source and
    the sha256 of its safetensors file for a local file or folder."""
    from ssld_zoo.catalogue.registry import get_weight_entry
    from ssld_zoo.files import file_sha256
    entry = get_weight_entry(weight)
    identity = {"weight": entry.full_name}
    if pretrained is True:
        identity["sha256"] = entry.hub.sha256 or "not pinned in the catalogue yet (converted on first use from "\
                                                 "the origin file and checked as create() checks it)"
        identity["origin"] = entry.origin_url or "none"
        if entry.origin_sha256:
            identity["origin sha256"] = entry.origin_sha256
        return identity
    assert not isinstance(pretrained, bool)  # export_backbone refuses False
    identity["source"] = os.fspath(pretrained)
    local = Path(os.fspath(pretrained)).expanduser()
    file = local / "model.safetensors" if local.is_dir() else local
    if file.is_file():
        identity["sha256"] = file_sha256(file)
    return identity


def _readme(target: Target, identity: dict[str, str], files: dict[str, str]) -> str:
    """The README.md written beside the export."""
    from ssld_zoo.version import __version__
    source = "\n".join(f"- {key}: {value}" for key, value in identity.items())
    written = "\n".join(f"- `{name}` sha256 {sha}" for name, sha in files.items())
    config = "\n".join(f"- {line}" for line in target.config)
    oracle = {"presnet": "libreyolo's copy of PResNet (`libreyolo.models.rtdetr.backbone.PResNet`) and transformers' "
                         "RTDetrResNetBackbone",
              "hgnetv2-dfine": "pydfine's copy of D-FINE's HGNetv2 (`dfine.backends.native.hgnetv2.HGNetv2`) and "
                               "libreyolo's DEIM copy",
              "hgnetv2-rtdetrv2": "libreyolo's copy of RT-DETRv2's HGNetv2 (`libreyolo.models.rtdetr.hgnetv2`)",
              "hf": "transformers' RTDetrResNetBackbone and HGNetV2Backbone"}[target.layout]
    proof = (f"The key map of this layout is proven by ssld-zoo's test suite ({PROOF_TEST}): with random weights and "
             f"random BatchNorm statistics, the export loads strictly into {oracle}, and every returned stage equals "
             "the zoo model's `features_only` output to 1e-5 relative error at 640x640 and at an odd size.")
    if target.layout == "hf":
        proof += " This folder was also loaded strictly into the transformers backbone before it was written."
        kept = "The backbone only (no classifier), BatchNorm `num_batches_tracked` included."
    else:
        kept = ("The `.pth` file is a plain tensor dict (`torch.load(path, weights_only=True)`); the `.safetensors` "
                "file holds the same tensors. The backbone only: no classifier, no BatchNorm `num_batches_tracked`.")
    if target.family.use_lab and target.layout != "presnet":
        proof += (" PaddleClas pads the stem's 2x2 max-pool with -inf (the zoo follows it); D-FINE and transformers "
                  "pad it with zeros, which differs at the last row and column when the stem's learnable affine "
                  "bias is negative (docs/detection.md, traps).")
    command = f"ssld-zoo backbone {identity['weight']} --for {target.layout}" + (
        f" --weights {identity['source']}" if "source" in identity else "")
    return (f"# {target.family.title} SSLD backbone for {LAYOUTS[target.layout]}\n\n"
            f"Written by ssld-zoo {__version__} (`{command}`).\n\n"
            f"## Source\n\n{source}\n\n## Files\n\n{written}\n\n"
            f"{kept}\n\n"
            f"## Where it goes\n\n{target.place}\n\n## Config values that fit\n\n{config}\n\n"
            "These detectors feed pixels scaled to [0, 1] without ImageNet mean/std; the SSLD weights were trained "
            "with mean/std normalisation (docs/detection.md).\n\n"
            f"## How it was proven\n\n{proof}\n")


def _make_folder(out: Path) -> list[Path]:
    """Create `out` (and missing parents); the folders created, deepest last. A place that cannot hold the folder
    is a `FileSystemError` naming it."""
    missing = [p for p in (out, *out.parents) if not p.exists()][::-1]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FileSystemError.from_os_error(e if e.filename else OSError(e.errno, e.strerror, str(out))) from e
    if not os.access(out, os.W_OK | os.X_OK):
        raise FileSystemError.from_os_error(OSError(13, "Permission denied", str(out)))
    return missing


def export_backbone(weight: str, layout: str, out: str | os.PathLike, *,
                    pretrained: bool | str | os.PathLike = True,
                    cache_dir: str | os.PathLike | None = None) -> BackboneExport:
    """Write zoo weight `weight` as the backbone file of `layout` into folder `out`.

    Args:
        weight: a zoo model or weight (`"resnet50d_ssld"`, `"hgnetv2_b4_ssld.ssld_stage1_in22k_in1k"`). Without a tag
            the weight the consumer's own file holds is taken where the model has it (ResNet50_vd: `ssld_v2_in1k`;
            D-FINE: `ssld_stage1_in22k_in1k`; RT-DETRv2: `ssld_stage2_ft_in1k`), else the catalogue's default.
        layout: one of `LAYOUTS`: `presnet`, `hgnetv2-dfine`, `hgnetv2-rtdetrv2`, `hf`.
        out: the folder to write (created); files already there under the same names are replaced.
        pretrained: True (the catalogue's verified weights: the Hub, a first-use conversion, a data-folder file) or
            an explicit source as `create(pretrained=...)` takes: a `.safetensors` file, a Hub-layout folder or
            `"hf-hub:org/name[@revision]"`.
        cache_dir: Hub cache folder (default: `HF_HUB_CACHE`).

    Returns:
        A `BackboneExport`. Nothing is left in `out` when anything fails (a folder this call created is removed).
    """
    from ssld_zoo.catalogue.registry import get_model_entry
    _check_layout(layout)
    if pretrained is False:
        raise DetectorBackboneError("export_backbone writes trained weights: pass pretrained=True (the catalogue's) "
                                    "or a source (a .safetensors file, a Hub-layout folder, hf-hub:org/name).",
                                    weight=weight)
    name, _, tag = weight.partition(".")
    entry = get_model_entry(name)
    if not tag:
        tag = next((t for t in PREFERRED_TAGS.get(layout, ()) if t in entry.weights), entry.default_weight)
    weight = f"{name}.{tag}"
    entry.weight(tag)  # an unknown tag fails here, listing the known ones
    target = target_for(layout, weight, entry.data)
    folder = Path(out).expanduser()
    created = _make_folder(folder)
    written: list[Path] = []
    try:
        from ssld_zoo.models.factory import create
        model = create(weight, pretrained=pretrained, cache_dir=cache_dir)
        state = consumer_state_dict(model.state_dict(), target)
        identity = _identity(weight, pretrained)
        metadata = {"format": "pt", "ssld_zoo_weight": weight, "layout": layout}
        files: dict[str, str] = {}
        _write_export(folder, target, state, metadata, files, written)
        from ssld_zoo.files import write_text_atomic
        readme = folder / "README.md"
        write_text_atomic(readme, _readme(target, identity, files))
        written.append(readme)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                break
        raise
    logger.debug("wrote %s for %s into %s", weight, layout, folder)
    return BackboneExport(folder, tuple(written), layout, weight, len(state))


def _write_export(folder: Path, target: Target, state: dict[str, torch.Tensor], metadata: dict[str, str],
                  files: dict[str, str], written: list[Path]) -> None:
    """Write the layout's files: each path onto `written` as soon as it is in place, its sha256 into `files`."""
    from ssld_zoo.files import file_sha256, write_bytes_atomic, write_text_atomic
    if target.layout == "hf":
        config = _hf_config(target.family)
        _check_hf_load(config, state, target)
        paths = [folder / name for name in HF_FILES]
        write_text_atomic(paths[0], config.to_json_string())
        written.append(paths[0])
        _write_safetensors(paths[1], state, metadata)
        written.append(paths[1])
    else:
        paths = [folder / target.filename, folder / Path(target.filename).with_suffix(".safetensors").name]
        write_bytes_atomic(paths[0], _pth_bytes(state))
        written.append(paths[0])
        _write_safetensors(paths[1], state, metadata)
        written.append(paths[1])
    files.update({path.name: file_sha256(path) for path in paths})


# --- the command ---

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments."""
    parser.add_argument("name", metavar="NAME[.TAG]", help="zoo weight, e.g. resnet50d_ssld or hgnetv2_b4_ssld."
                                                          "ssld_stage1_in22k_in1k")
    parser.add_argument("--for", dest="layout", required=True, metavar="LAYOUT",
                        help="the consumer's key layout: " + "; ".join(f"{k} ({v})" for k, v in LAYOUTS.items()))
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write (created)")
    parser.add_argument("--weights", metavar="SRC", help="a .safetensors file, Hub-layout folder or hf-hub:org/name "
                                                         "(default: the catalogue's verified weights)")
    parser.add_argument("--cache-dir", help="Hub cache folder (default: HF_HUB_CACHE)")


def run(args: argparse.Namespace) -> None:
    """`ssld-zoo backbone`: write the files, then name them."""
    result = export_backbone(args.name, args.layout, args.out,
                             pretrained=args.weights if args.weights else True, cache_dir=args.cache_dir)
    print(f"{result.weight} -> {result.layout} ({LAYOUTS[result.layout]}), {result.num_tensors} tensors:")
    for path in result.files:
        print(f"  {path} ({path.stat().st_size / 1e6:.1f} MB)")
