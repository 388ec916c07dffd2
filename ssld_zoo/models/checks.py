"""Checks that every way of loading weights shares: how weights fit a built model, that they are finite, and which
`model_args` a `config.json` may give an architecture (`check_model_args`)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.reading import shorten
from ssld_zoo.weights.validation import MAX_CHANNELS, MAX_CLASSES, check_model_args_values, steers_loading

if TYPE_CHECKING:
    from torch import nn

_NOT_STATE_KEYS = ("num_batches_tracked",)  # BatchNorm's counter: absent from many published files, never used


def shapes_of(state: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """key -> shape of a state dict's tensors."""
    return {k: tuple(v.shape) for k, v in state.items()}


def state_mismatch(own: Mapping[str, Sequence[int]], given: Mapping[str, Sequence[int]]) -> str:
    """How weights (`given`: key -> shape) fail to fit a model (`own`), in one line naming the first few keys of each
    kind: missing, unexpected, of another shape. Empty when they fit."""
    missing = [k for k in own if k not in given and not k.endswith(_NOT_STATE_KEYS)]
    unexpected = [k for k in given if k not in own]
    shapes = [f"{k} is {list(given[k])} in the file, {list(v)} in the model" for k, v in own.items()
              if k in given and tuple(given[k]) != tuple(v)]
    return "; ".join(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
                     for label, keys in (("missing key(s)", missing), ("unexpected key(s)", unexpected),
                                         ("tensor(s) of another shape", shapes)) if keys)


def check_finite(model: Any, source: str) -> Any:
    """`model`, refused with one clear error when a weight it loaded is NaN or infinite (a damaged file: a sha256
    check cannot catch it when the damage was there before the file was pinned)."""
    import torch
    bad = [key for key, tensor in model.state_dict().items()
           if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if bad:
        raise InvalidWeightsError(f"The weights from {source} hold NaN or infinite values in {len(bad)} tensor(s), "
                                  f"e.g. {bad[0]}; the file is damaged. Download, convert or train it again.",
                                  path=source, key=bad[0])
    return model


ArgCheck = tuple[Callable[[Any], bool], str]
_LAYER_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_BOUNDS = {"num_classes": (0, MAX_CLASSES), "in_chans": (1, MAX_CHANNELS)}
MAX_GROWTH = 16  # how many times its default size model_args may make an architecture ...
MAX_HEAD = MAX_CLASSES * 4096  # ... plus the largest classifier: 100,000 classes on 4,096 features


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arg_check(name: str, default: Any) -> ArgCheck | None:
    """What a value of constructor argument `name` must be, judged by its default (None: not allowed from a file)."""
    if name in _BOUNDS:
        low, high = _BOUNDS[name]
        return (lambda v: _whole(v) and low <= v <= high), f"a whole number from {low} to {high:,}"
    if isinstance(default, bool):
        return (lambda v: isinstance(v, bool)), "true or false"
    if isinstance(default, int):
        return _whole, "a whole number"
    if isinstance(default, float):
        return (lambda v: _whole(v) or isinstance(v, float)), "a number"
    if isinstance(default, str):
        return (lambda v: isinstance(v, str)), "a string"
    if isinstance(default, (tuple, list)) and all(isinstance(d, (bool, int, float, str)) for d in default):
        return (lambda v: isinstance(v, list)), "a list"
    if default is None:
        return (lambda v: True), "a value"  # its type is the constructor's to check (on the meta device)
    if callable(default) and name.endswith("_layer"):  # timm resolves a layer's registered name: 'relu', 'gelu'
        return (lambda v: isinstance(v, str) and bool(_LAYER_NAME.fullmatch(v))), "a layer name such as 'relu'"
    return None


def constructor_arguments(model_class: "type[nn.Module]") -> dict[str, ArgCheck]:
    """The `model_args` a `config.json` may give a timm model of class `model_class`: the keyword arguments of its
    `__init__` (and of its parents' while an `__init__` passes `**kwargs` on), each with the check its default
    implies. Left out: arguments without a default (the variant's structure, which its entrypoint sets), arguments
    whose default is an object a file cannot name, and every argument that steers loading
    (`ssld_zoo.weights.validation.steers_loading`: `checkpoint_path`, `pretrained*`, `device`, paths, ...)."""
    import inspect

    import torch
    allowed: dict[str, ArgCheck] = {}
    for cls in model_class.__mro__:
        if cls is torch.nn.Module:
            break
        if "__init__" not in cls.__dict__:
            continue
        parameters = list(inspect.signature(cls.__dict__["__init__"]).parameters.values())[1:]
        for p in parameters:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in allowed or p.default is p.empty:
                continue
            check = None if steers_loading(p.name) else _arg_check(p.name, p.default)
            if check is not None:
                allowed[p.name] = check
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return allowed


def check_model_args(architecture: str, model_args: Any, *, where: str) -> dict[str, Any]:
    """`model_args` from a `config.json` (`where` names it), checked before they reach timm for `architecture`.

    First as JSON values without a loading key (`check_model_args_values`); then against the architecture's own
    constructor arguments: the class its timm entrypoint builds is found by building it on the meta device (which
    allocates nothing), and `constructor_arguments` reads what that class takes. Unknown keys are refused with the
    list of allowed ones, each value must be of the type its default has, and together they must build the
    architecture on the meta device (a constructor's TypeError or ValueError becomes one line here), into a model of
    at most `MAX_GROWTH` times the default build's parameters plus `MAX_HEAD` (so no file can make the real build
    allocate without bound). Returns the checked arguments."""
    import timm
    args = check_model_args_values(model_args, where=where)
    if not args:
        return args
    if not (isinstance(architecture, str) and timm.is_model(architecture)):
        raise InvalidWeightsError(f"{where}: architecture {shorten(architecture)} is not a timm model, so its "
                                  "model_args cannot be checked.", path=where, key="architecture")
    default = _meta_model(architecture, {}, where)
    allowed = constructor_arguments(type(default))
    unknown = sorted(k for k in args if k not in allowed)
    if unknown:
        raise InvalidWeightsError(
            f"{where}: model_args {', '.join(unknown[:5])} {'is' if len(unknown) == 1 else 'are'} not among the "
            f"constructor arguments that '{architecture}' takes from a config.json: {', '.join(sorted(allowed))}.",
            path=where, key=f"model_args.{unknown[0]}")
    for key, value in args.items():
        valid, kind = allowed[key]
        if not valid(value):
            raise InvalidWeightsError(f"{where}: model_args.{key} {shorten(value)} is not {kind}, as "
                                      f"'{architecture}' takes it; fix or re-create the folder.", path=where,
                                      key=f"model_args.{key}")
    size, limit = _numel(_meta_model(architecture, args, where)), MAX_GROWTH * _numel(default) + MAX_HEAD
    if size > limit:
        raise InvalidWeightsError(f"{where}: model_args ({', '.join(sorted(args))}) make '{architecture}' a model of "
                                  f"{size:,} parameters, more than the {limit:,} allowed ({MAX_GROWTH} times its "
                                  "default size plus the largest head); fix or re-create the folder.", path=where,
                                  key="model_args")
    return args


def _numel(model: "nn.Module") -> int:
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def _meta_model(architecture: str, args: dict[str, Any], where: str) -> "nn.Module":
    """`architecture` built with `args` on the meta device (no memory for its weights)."""
    import timm
    import torch
    try:
        with torch.device("meta"):
            return timm.create_model(architecture, pretrained=False, **args)
    except Exception as e:  # whatever the constructor raises for values it cannot use: the file's fault, one line
        reason = (str(e).splitlines() or [""])[0][:200]
        raise InvalidWeightsError(f"{where}: model_args ({', '.join(sorted(args)) or 'none'}) do not build "
                                  f"'{architecture}': {type(e).__name__}: {reason}; fix or re-create the folder.",
                                  path=where, key="model_args") from e
