"""torch.compile smoke test: a zoo classifier and a `features_only` backbone compile with the default backend
(inductor, generating C++ on the CPU) as one graph each, and give eager's outputs."""
from __future__ import annotations

from typing import Iterator

import pytest
import torch

import ssld_zoo


@pytest.fixture(autouse=True)
def fresh_dynamo() -> Iterator[None]:
    """Compile in this process's own threads (no worker pool to start on a 2-core runner); forget compiled graphs."""
    from torch._inductor import config
    torch._dynamo.reset()
    with config.patch(compile_threads=1):
        yield
    torch._dynamo.reset()


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Equal up to float32 rounding of reordered kernels: 1e-4 of the largest value."""
    assert expected.abs().max() > 1e-2
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def test_compiled_classifier_matches_eager() -> None:
    model = ssld_zoo.create("resnet20_cifar.sup_cifar10", pretrained=True).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(x)
        assert_close(compiled(x), expected)
        assert_close(compiled(x), expected)  # the cached compiled code, not only the first call
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


def test_compiled_features_only_matches_eager() -> None:
    backbone = ssld_zoo.create("resnet20_cifar.sup_cifar10", pretrained=True, features_only=True).eval()
    compiled = torch.compile(backbone, fullgraph=True)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = backbone(x), compiled(x)
    assert [f.shape[1] for f in actual] == backbone.feature_info.channels() == [16, 16, 32, 64]
    for a, e in zip(actual, expected):
        assert_close(a, e)
