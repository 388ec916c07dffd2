"""`ssld_zoo.weights.validation` and `ssld_zoo.models.checks.check_model_args`: what comes with weights from outside
(a safetensors header, a timm `config.json`, a Hub revision) is checked in full before anything is built from it.

The properties generate their inputs (Hypothesis; the "ci" profile in conftest.py runs a fixed seed and example
count): files written by safetensors' own writer pass and read back the same; every mutation of one that breaks the
format is refused, and whatever bytes are given, only `InvalidWeightsError` escapes, within a memory bound of the
file's size, and a file the check accepts is one safetensors itself loads. Configs the project and timm write pass;
any other JSON gives a checked config or one line. Revisions: only `InvalidWeightsError` escapes, and an accepted
one never leaves the Hub cache's `refs/` folder. End to end, a folder whose `config.json` asks timm for a
`checkpoint_path` is refused in one line by `create()` and by `ssld-zoo eval`.
"""
from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ssld_zoo.errors import InvalidWeightsError
from ssld_zoo.weights.validation import (CONFIG_SCHEMA, DTYPE_BITS, LOADING_KEYS, PRETRAINED_CFG_DROPPED,
                                         PRETRAINED_CFG_KEPT, PRETRAINED_CFG_NEUTRAL, check_config,
                                         check_repo_id, check_revision, check_safetensors, safetensors_problem,
                                         steers_loading)

R20 = "resnet20_cifar.sup_cifar10"
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int16, torch.int32,
          torch.int64, torch.uint8, torch.bool, torch.float8_e4m3fn, torch.float8_e5m2]


# -- safetensors headers ----------------------------------------------------------------------------------------------
@st.composite
def state_dicts(draw: st.DrawFn) -> dict[str, torch.Tensor]:
    names = draw(st.lists(st.text(min_size=1, max_size=12).filter(lambda n: n != "__metadata__"), min_size=1,
                          max_size=6, unique=True))
    return {name: torch.zeros(draw(st.lists(st.integers(0, 4), max_size=3)), dtype=draw(st.sampled_from(DTYPES)))
            for name in names}


METADATA = st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)


def _write(path: Path, header: Any, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _split(path: Path) -> tuple[dict[str, Any], bytes]:
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + length]), raw[8 + length:]


def _checked_within_memory(path: Path) -> dict[str, Any] | None:
    """`check_safetensors(path)`, None when refused; asserts that only `InvalidWeightsError` escapes, in one line,
    and that the check held at most 16 times the file's size (plus 256 KiB) while it ran."""
    tracemalloc.start()
    try:
        return check_safetensors(path)
    except InvalidWeightsError as e:
        assert "\n" not in str(e) and str(path) in str(e), str(e)
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak <= 16 * path.stat().st_size + (256 << 10), (peak, path.stat().st_size)


@given(state=state_dicts(), metadata=METADATA)
def test_property_files_written_by_safetensors_pass_and_read_back(tmp_path: Path, state: dict[str, torch.Tensor],
                                                                   metadata: dict[str, str]):
    path = tmp_path / "w.safetensors"
    save_file(state, path, metadata=metadata or None)
    header = _checked_within_memory(path)
    assert header is not None and safetensors_problem(path) is None
    with safe_open(path, "pt") as f:
        assert sorted(f.keys()) == sorted(k for k in header if k != "__metadata__") == sorted(state)
        assert (f.metadata() or {}) == header.get("__metadata__", {})
        assert all(list(f.get_slice(k).get_shape()) == header[k]["shape"] for k in f.keys())


def _sized(header: dict[str, Any]) -> list[str]:
    return sorted(k for k, v in header.items() if k != "__metadata__" and v["data_offsets"][1] > v["data_offsets"][0])


Mutation = Callable[[dict[str, Any], bytes, st.DataObject], tuple[Any, bytes]]


def _overlap(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    sized = _sized(h)
    assume(len(sized) >= 2)
    a, b = draw.draw(st.permutations(sized))[:2]
    h[b] = dict(h[b], data_offsets=h[a]["data_offsets"], shape=h[a]["shape"], dtype=h[a]["dtype"])
    return h, data


def _gap(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    sized = _sized(h)
    assume(sized)
    gap = draw.draw(st.integers(1, 64))
    last = max(sized, key=lambda k: h[k]["data_offsets"][0])
    begin, end = h[last]["data_offsets"]
    h[last]["data_offsets"] = [begin + gap, end + gap]
    return h, data + b"\0" * gap


def _bad_dtype(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    name = draw.draw(st.sampled_from(sorted(k for k in h if k != "__metadata__")))
    h[name]["dtype"] = draw.draw(st.one_of(st.text(max_size=8).filter(lambda d: d not in DTYPE_BITS), st.integers(),
                                           st.none(), st.lists(st.sampled_from(sorted(DTYPE_BITS)), max_size=2)))
    return h, data


def _wrong_shape(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    sized = _sized(h)
    assume(sized)
    name = draw.draw(st.sampled_from(sized))
    shape = h[name]["shape"]
    h[name]["shape"] = draw.draw(st.one_of(
        st.just(shape + [draw.draw(st.integers(2, 10 ** 6))]),  # more elements than its bytes hold
        st.just(shape[:-1] + [-1]) if shape else st.just([-1]),
        st.lists(st.one_of(st.floats(allow_nan=False), st.text(max_size=2), st.booleans()), min_size=1, max_size=3),
        st.just([1] * 33), st.integers(), st.text(max_size=4)))
    return h, data


def _bad_offsets(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    sized = _sized(h)
    assume(sized)
    name = draw.draw(st.sampled_from(sized))
    begin, end = h[name]["data_offsets"]
    h[name]["data_offsets"] = draw.draw(st.sampled_from([[end, begin], [begin], [begin, end, end],
                                                         [-1, end - begin - 1], [begin, end + 2 ** 64], str(begin),
                                                         None]))
    return h, data


def _metadata(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    h["__metadata__"] = draw.draw(st.one_of(
        st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.none(), st.lists(st.text(), max_size=2),
                                                       st.floats(allow_nan=False)), min_size=1, max_size=3),
        st.lists(st.text(max_size=3), max_size=2), st.text(max_size=4), st.integers()))
    return h, data


def _entry_keys(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    name = draw.draw(st.sampled_from(sorted(k for k in h if k != "__metadata__")))
    if draw.draw(st.booleans()):
        del h[name][draw.draw(st.sampled_from(["dtype", "shape", "data_offsets"]))]
    else:
        h[name][draw.draw(st.text(max_size=6).filter(lambda k: k not in ("dtype", "shape", "data_offsets")))] = 1
    return h, data


def _not_an_entry(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    name = draw.draw(st.sampled_from(sorted(k for k in h if k != "__metadata__")))
    h[name] = draw.draw(st.one_of(st.none(), st.integers(), st.text(max_size=4), st.lists(st.integers(), max_size=3)))
    return h, data


def _not_an_object(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    return draw.draw(st.one_of(st.lists(st.integers(), max_size=3), st.text(max_size=4), st.none())), data


def _truncated(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    assume(data)
    return h, data[:-draw.draw(st.integers(1, len(data)))]


def _trailing(h: dict[str, Any], data: bytes, draw: st.DataObject) -> tuple[Any, bytes]:
    return h, data + draw.draw(st.binary(min_size=1, max_size=64))


MUTATIONS: dict[str, Mutation] = {
    "overlapping offsets": _overlap, "a gap": _gap, "an unknown dtype": _bad_dtype, "a wrong shape": _wrong_shape,
    "bad offsets": _bad_offsets, "non-string metadata": _metadata, "extra or missing entry keys": _entry_keys,
    "an entry that is not an object": _not_an_entry, "a header that is not an object": _not_an_object,
    "truncated data": _truncated, "trailing bytes": _trailing}


@given(state=state_dicts(), mutation=st.sampled_from(sorted(MUTATIONS)), draw=st.data())
def test_property_every_broken_header_is_refused_in_one_line(tmp_path: Path, state: dict[str, torch.Tensor],
                                                            mutation: str, draw: st.DataObject):
    path = tmp_path / "w.safetensors"
    save_file(state, path)
    header, data = MUTATIONS[mutation](*_split(path), draw)
    _write(path, header, data)
    assert _checked_within_memory(path) is None, mutation
    assert safetensors_problem(path) is not None


@given(state=state_dicts(), length=st.one_of(st.integers(0, 2 ** 64 - 1), st.integers(0, 4096)),
       cut=st.integers(0, 64))
def test_property_header_lengths_and_cuts_are_refused_without_reading_beyond(tmp_path: Path, state: dict[str, Any],
                                                                             length: int, cut: int):
    """A header length field of any value (up to 2**64 - 1), and a file cut anywhere: refused, never allocated."""
    path = tmp_path / "w.safetensors"
    save_file(state, path)
    raw = path.read_bytes()
    assume(length != struct.unpack("<Q", raw[:8])[0] and cut < len(raw))
    path.write_bytes(struct.pack("<Q", length) + raw[8:])
    assert _checked_within_memory(path) is None
    path.write_bytes(raw[:cut])
    assert _checked_within_memory(path) is None


@settings(max_examples=100)
@given(data=st.binary(max_size=300), length=st.integers(0, 300))
def test_property_any_bytes_give_a_checked_header_or_one_line(tmp_path: Path, data: bytes, length: int):
    """Arbitrary bytes after a plausible length field: `check_safetensors` accepts them or refuses in one line, and
    whatever it accepts, safetensors' own reader loads."""
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", length) + data)
    if _checked_within_memory(path) is not None:
        load_file(path)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path):
    fifo = tmp_path / "w.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(InvalidWeightsError, match="is a FIFO"):
        check_safetensors(fifo)
    assert "FIFO" in (safetensors_problem(fifo) or "")


def test_the_issue_repro_two_tensors_at_the_same_offsets(tmp_path: Path):
    path = _write(tmp_path / "w.safetensors", {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 16)
    with pytest.raises(InvalidWeightsError, match=r"w.safetensors is not a valid safetensors file: tensor 'b' starts "
                                                  r"at byte 0 of the data, where the tensors before it end at 8: they "
                                                  r"overlap\."):
        check_safetensors(path)


# -- config.json ------------------------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70)
                    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)
CFG_RULES = {**PRETRAINED_CFG_KEPT, **PRETRAINED_CFG_DROPPED, **PRETRAINED_CFG_NEUTRAL}
ARG_NAMES = st.sampled_from(sorted(LOADING_KEYS) + ["pretrained", "pretrained_cfg", "weights_path", "drop_rate",
                                                    "num_classes", "in_chans", "global_pool", "widths", "x y", ""])


def _near(keys: list[str]) -> st.SearchStrategy[str]:
    """Mostly the known keys, sometimes anything."""
    return st.one_of(st.sampled_from(keys), st.sampled_from(keys), st.text(max_size=10))


CONFIGS = st.dictionaries(_near(list(CONFIG_SCHEMA)), JSON, max_size=6).flatmap(lambda top: st.fixed_dictionaries(
    {}, optional={"pretrained_cfg": st.dictionaries(_near(sorted(CFG_RULES)), JSON, max_size=8),
                  "model_args": st.dictionaries(ARG_NAMES, JSON, max_size=4)}).map(lambda nested: {**top, **nested}))


def _one_line_or_checked(config: Any) -> dict[str, Any] | None:
    try:
        checked = check_config(config, where="x/config.json")
    except InvalidWeightsError as e:
        assert "\n" not in str(e) and str(e).startswith("x/config.json"), str(e)
        return None
    assert set(checked) <= set(CONFIG_SCHEMA) and None not in checked.values()
    assert set(checked.get("pretrained_cfg", {})) <= set(PRETRAINED_CFG_KEPT)  # no source, no classifier, ...
    assert not any(steers_loading(k) for k in checked.get("model_args", {}))
    json.dumps(checked)  # still plain data
    return checked


@given(config=st.one_of(CONFIGS, JSON))
def test_property_any_json_gives_a_checked_config_or_one_line(config: Any):
    _one_line_or_checked(config)


def _written_configs() -> list[tuple[str, dict[str, Any]]]:
    """The config.json that `ssld-zoo download` / `convert` write for every catalogue weight."""
    from ssld_zoo.catalogue.registry import iter_models
    from ssld_zoo.weights.layout import timm_config
    return [(f"{e.name}.{tag}", timm_config(f"{e.name}.{tag}", "0" * 64, 1, "1" * 64))
            for e in iter_models() for tag in e.weights]


def test_every_config_the_zoo_writes_passes_with_its_preprocessing_kept():
    from ssld_zoo.catalogue.registry import get_weight_entry
    from ssld_zoo.weights.sources import pretrained_cfg_for
    written = _written_configs()
    assert len(written) > 30
    for name, config in written:
        checked = check_config(json.loads(json.dumps(config)), where=name)
        expected = {k: v for k, v in pretrained_cfg_for(get_weight_entry(name)).items() if v is not None
                    and k in PRETRAINED_CFG_KEPT}
        assert {k: checked["pretrained_cfg"][k] for k in expected} == expected, name
        assert checked["ssld_zoo"] == config["ssld_zoo"] and checked.get("model_args") == config.get("model_args")


def test_a_folder_timm_writes_passes(tmp_path: Path):
    """timm's own Hub export (`save_for_hf`: config.json + model.safetensors) of a zoo model passes both checks."""
    import timm
    from timm.models import save_for_hf

    import ssld_zoo  # noqa: F401  (registers the zoo's architectures with timm)
    save_for_hf(timm.create_model("resnet20_cifar", drop_rate=0.1), str(tmp_path), safe_serialization=True)
    raw = json.loads((tmp_path / "config.json").read_text())
    checked = check_config(raw, where="timm")
    assert checked["architecture"] == "resnet20_cifar" and checked["pretrained_cfg"]["num_classes"] == 10
    assert "first_conv" in raw["pretrained_cfg"] and "first_conv" not in checked["pretrained_cfg"]
    assert set(check_safetensors(tmp_path / "model.safetensors")) == set(load_file(tmp_path / "model.safetensors"))


@given(name_config=st.sampled_from(_written_configs()), path_choice=st.data(), value=JSON)
def test_property_a_changed_value_in_a_written_config_is_checked_or_one_line(name_config: tuple[str, Any],
                                                                            path_choice: st.DataObject, value: Any):
    config = json.loads(json.dumps(name_config[1]))
    node = config
    while True:  # walk down to a random key, and put `value` there
        key = path_choice.draw(st.sampled_from(sorted(node)))
        if isinstance(node[key], dict) and node[key] and path_choice.draw(st.booleans()):
            node = node[key]
            continue
        node[key] = value
        break
    _one_line_or_checked(config)


@pytest.mark.parametrize("key", sorted(LOADING_KEYS) + ["pretrained", "pretrained_cfg", "pretrained_cfg_overlay",
                                                         "onnx_file", "weights_url", "hub_id", "cache_folder"])
def test_model_args_that_steer_loading_are_refused(key: str):
    with pytest.raises(InvalidWeightsError, match=f"model_args '{key}' would change where or how weights are loaded"):
        check_config({"architecture": "resnet20_cifar", "model_args": {key: "x"}}, where="c.json")


@pytest.mark.parametrize("cfg, message", [
    ({"file": "/etc/passwd"}, None), ({"hf_hub_id": "evil/x", "url": "https://e.x/w.pth"}, None),
    ({"classifier": "layer1.0.conv1", "first_conv": "conv1"}, None),
    ({"custom_load": True}, "custom_load True must be false"), ({"label_offset": 1}, "label_offset 1 must be 0"),
    ({"state_dict": {}}, "state_dict a dict of 0 items cannot come from a file"),
    ({"input_sise": [3, 32, 32]}, "unknown key(s) 'input_sise' in pretrained_cfg; the allowed ones are architecture"),
])
def test_pretrained_cfg_keys_that_name_weights_are_dropped_and_those_that_change_loading_refused(cfg, message):
    config = {"architecture": "resnet20_cifar", "pretrained_cfg": {"mean": [0.5] * 3, **cfg}}
    if message is None:
        assert check_config(config, where="c.json")["pretrained_cfg"] == {"mean": (0.5, 0.5, 0.5)}
    else:
        with pytest.raises(InvalidWeightsError, match=f"^c.json: {message.replace('(', '[(]').replace(')', '[)]')}"):
            check_config(config, where="c.json")


def test_unknown_top_level_keys_are_refused_listing_the_allowed_ones():
    with pytest.raises(InvalidWeightsError) as caught:
        check_config({"architecture": "resnet20_cifar", "loader": "pickle"}, where="c.json")
    assert str(caught.value) == (f"c.json: unknown key(s) 'loader' at the top level; the allowed ones are "
                                 f"{', '.join(sorted(CONFIG_SCHEMA))}.")


# -- model_args against the architecture ------------------------------------------------------------------------------
OWN_ARGS = {"resnet20_cifar": ["drop_rate", "num_classes", "in_chans", "global_pool", "widths"],
            "mobilenetv1_100": ["act_layer", "drop_rate", "stem_size", "fix_stem", "global_pool"],
            "resnet34d_ssld": ["first_short_conv", "stem_width", "avg_down", "drop_rate"],
            "hgnetv2_b0_ssld": ["use_lab", "drop_rate", "num_classes"]}
OTHER_ARGS = ["block", "layers", "cfg", "frobnicate", "checkpoint_path", "device"]
ARG_VALUES = st.one_of(st.floats(0, 0.5), st.integers(1, 64), st.booleans(), st.sampled_from(["relu", "avg", "nope"]),
                       st.lists(st.integers(1, 64), min_size=3, max_size=3), JSON)


@settings(max_examples=20)
@given(architecture_args=st.sampled_from(sorted(OWN_ARGS)).flatmap(lambda a: st.tuples(st.just(a), st.dictionaries(
    st.one_of(st.sampled_from(OWN_ARGS[a]), st.sampled_from(OWN_ARGS[a]), st.sampled_from(OTHER_ARGS)), ARG_VALUES,
    max_size=3))))
def test_property_checked_model_args_build_the_architecture(architecture_args: tuple[str, dict[str, Any]]):
    """Only `InvalidWeightsError` escapes, and whatever passes builds the architecture (on the meta device)."""
    import timm

    from ssld_zoo.models.checks import MAX_GROWTH, MAX_HEAD, check_model_args
    architecture, args = architecture_args
    try:
        checked = check_model_args(architecture, args, where="c.json")
    except InvalidWeightsError as e:
        assert "\n" not in str(e) and str(e).startswith("c.json: "), str(e)
        return
    with torch.device("meta"):
        built, default = timm.create_model(architecture, **checked), timm.create_model(architecture)
    assert _numel(built) <= MAX_GROWTH * _numel(default) + MAX_HEAD  # the real build is bounded too


def _numel(model: torch.nn.Module) -> int:
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def test_model_args_allow_list_is_the_architectures_own_constructor_arguments():
    from ssld_zoo.models.checks import check_model_args
    with pytest.raises(InvalidWeightsError) as caught:
        check_model_args("resnet20_cifar", {"frobnicate": 1}, where="c.json")
    assert str(caught.value) == ("c.json: model_args frobnicate is not among the constructor arguments that "
                                 "'resnet20_cifar' takes from a config.json: drop_rate, global_pool, in_chans, "
                                 "num_classes, widths.")
    assert check_model_args("mobilenetv1_100", {"act_layer": "relu"}, where="c") == {"act_layer": "relu"}  # catalogue
    with pytest.raises(InvalidWeightsError, match=r"^c: model_args \(widths\) do not build 'resnet20_cifar': "
                                                  r"ValueError: "):
        check_model_args("resnet20_cifar", {"widths": [8, 16]}, where="c")
    with pytest.raises(InvalidWeightsError, match=r"^c: model_args.drop_rate 'x' is not a number, as"):
        check_model_args("resnet20_cifar", {"drop_rate": "x"}, where="c")
    with pytest.raises(InvalidWeightsError, match=r"^c: model_args \(stem_width\) make 'resnet34d_ssld' a model of "
                                                  r"[\d,]{17,} parameters, more than the [\d,]+ allowed"):
        check_model_args("resnet34d_ssld", {"stem_width": 10 ** 6}, where="c")  # never allocated: built on meta


# -- Hub ids and revisions --------------------------------------------------------------------------------------------
PIECES = ["..", "/", "refs/", "refs/pr/", "%2e", "%2F", "\n", "\r", "\x00", "\x7f", " ", "~", "^", ":", "?", "*",
          "[", "\\", "@{", "@", ".lock", ".", "-", "+", "main", "v1", "1", "ü", "\u202e", "\ufeff", "a" * 40]
BENIGN = ["main", "v1", "1", "7", "_", "a" * 40, "refs/pr/", "."]  # so that many joined revisions pass
REVISIONS = st.one_of(st.lists(st.sampled_from(BENIGN), min_size=1, max_size=4).map("".join),
                      st.lists(st.sampled_from(PIECES + BENIGN) | st.text(max_size=3), max_size=8).map("".join),
                      st.text(max_size=300))


@given(revision=REVISIONS)
def test_property_accepted_revisions_stay_inside_refs(tmp_path: Path, revision: str):
    """Only `InvalidWeightsError` escapes; an accepted revision is printable ASCII without '%', '..' or '\\', and
    joined under the Hub cache's `refs/` (where huggingface_hub writes a branch's commit) it stays there."""
    try:
        accepted = check_revision(revision)
    except InvalidWeightsError as e:
        assert "\n" not in str(e)
        return
    assert accepted == revision and len(revision) <= 255
    assert revision.isascii() and revision.isprintable() and not set(revision) & set("%\\ ~^:?*[@")
    assert ".." not in revision and not revision.startswith(("/", ".", "-")) and not revision.endswith((".", "/"))
    refs = (tmp_path / "refs").resolve()
    assert (refs / revision).resolve().is_relative_to(refs)
    assert os.path.normpath(os.path.join("refs", revision)).startswith("refs" + os.sep)


@given(revision=st.one_of(st.from_regex(r"[0-9a-f]{40}", fullmatch=True), st.from_regex(r"refs/pr/[1-9][0-9]{0,3}",
                                                                                          fullmatch=True),
                          st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,30}(\.[A-Za-z0-9_-]{1,8}){0,2}", fullmatch=True)))
def test_property_commits_branches_tags_and_pull_requests_pass(revision: str):
    assume(not revision.endswith(".lock"))
    assert check_revision(revision) == revision


@given(spec=st.one_of(REVISIONS.map(lambda r: "hf-hub:org/name@" + r), REVISIONS.map(lambda r: "hf-hub:" + r)))
def test_property_hub_ids_parse_or_give_one_line(spec: str):
    from ssld_zoo.weights.sources import HubSource, parse_source
    try:
        source = parse_source(spec)
    except InvalidWeightsError as e:
        assert "\n" not in str(e) and "must look like 'hf-hub:org/name'" in str(e), str(e)
        return
    assert isinstance(source, HubSource) and source.repo_id.count("/") == 1
    assert source.revision is None or check_revision(source.revision) == source.revision


@pytest.mark.parametrize("revision", ["refs/../../../../../X/PWN", "main\n", "%2e%2e", "a/b", "..", "x.lock",
                                      "refs/heads/main", "refs/pr/0", "@{-1}", "-rf", ".hidden", "x" * 256])
def test_the_issue_repro_revisions_are_refused(revision: str):
    from ssld_zoo.weights.sources import parse_source
    with pytest.raises(InvalidWeightsError, match="must look like 'hf-hub:org/name'"):
        parse_source(f"hf-hub:me/r20@{revision}")


@given(repo=st.one_of(st.text(max_size=40), st.lists(st.sampled_from(["org", "/", "..", "-", "name", ".", "_", "ü",
                                                                      "\n", "--"]), max_size=6).map("".join)))
def test_property_repo_ids_are_org_slash_name_or_one_line(repo: str):
    try:
        accepted = check_repo_id(repo)
    except InvalidWeightsError as e:
        assert "\n" not in str(e)
        return
    org, name = accepted.split("/")
    assert org and name and ".." not in accepted and accepted.isascii()


# -- end to end: a folder whose config.json asks timm to load another file --------------------------------------------
@pytest.fixture
def folder_with_checkpoint_path(tmp_path: Path) -> Path:
    """A Hub-layout folder of the shipped student (as `ssld-zoo download` writes it) whose config.json's model_args
    name a checkpoint of zeros: timm would load it over the verified weights."""
    from ssld_zoo.weights.layout import download_folder
    folder = download_folder(R20, tmp_path / "dl")
    torch.save({k: torch.zeros_like(v) for k, v in load_file(folder / "model.safetensors").items()},
               tmp_path / "zeros.pth")
    config = json.loads((folder / "config.json").read_text())
    config["model_args"] = {"checkpoint_path": str(tmp_path / "zeros.pth")}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_create_refuses_a_folder_whose_model_args_name_a_checkpoint(folder_with_checkpoint_path: Path):
    import ssld_zoo
    with pytest.raises(InvalidWeightsError, match="model_args 'checkpoint_path' would change where or how weights are "
                                                  "loaded") as caught:
        ssld_zoo.create("resnet20_cifar", pretrained=folder_with_checkpoint_path)
    assert str(folder_with_checkpoint_path / "config.json") in str(caught.value)


def test_eval_refuses_a_folder_whose_model_args_name_a_checkpoint(folder_with_checkpoint_path: Path, shared_data: Path,
                                                                  capsys: pytest.CaptureFixture):
    from ssld_zoo.cli import main
    code = main(["eval", str(folder_with_checkpoint_path), "cifar10:test", "--limit", "2"])
    err = capsys.readouterr().err
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"ssld-zoo: error: {folder_with_checkpoint_path / 'config.json'}: model_args "
                          "'checkpoint_path' would change where or how weights are loaded"), err
