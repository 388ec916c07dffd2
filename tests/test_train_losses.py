"""The five training losses against hand-computed values and known identities."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssld_zoo.train.losses import ce, counted, get_loss, js, kl, reduce, soft_ce, symmetric_kl

P = [0.7, 0.2, 0.1]
Q = [0.2, 0.5, 0.3]


def logits(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).log()  # log-probabilities are valid logits


def test_hand_computed_values():
    s, t = logits(Q), logits(P)  # student q, teacher p
    kl_pq = sum(p * math.log(p / q) for p, q in zip(P, Q))
    kl_qp = sum(q * math.log(q / p) for p, q in zip(P, Q))
    m = [(p + q) / 2 for p, q in zip(P, Q)]
    js_value = 0.5 * sum(p * math.log(p / mi) for p, mi in zip(P, m)) + 0.5 * sum(
        q * math.log(q / mi) for q, mi in zip(Q, m))
    assert symmetric_kl(s, t).item() == pytest.approx(0.5 * (kl_pq + kl_qp), rel=1e-6)
    assert soft_ce(s, t).item() == pytest.approx(-sum(p * math.log(q) for p, q in zip(P, Q)), rel=1e-6)
    assert js(s, t).item() == pytest.approx(js_value, rel=1e-6)
    assert kl(s, t).item() == pytest.approx(kl_pq, rel=1e-6)
    assert ce(s, torch.tensor([1])).item() == pytest.approx(-math.log(0.5), rel=1e-6)


def test_temperature_softens_and_scales_by_t_squared():
    s, t = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 3.0]])
    T = 4.0
    expected = T * T * F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                                reduction="sum")
    assert kl(s, t, T).item() == pytest.approx(expected.item(), rel=1e-6)
    assert get_loss("kl", T)(s, t).item() == pytest.approx(expected.item(), rel=1e-6)


def test_identities():
    x = torch.randn(16, 10, generator=torch.Generator().manual_seed(0)) * 5
    y = torch.randn(16, 10, generator=torch.Generator().manual_seed(1)) * 5
    for fn in (symmetric_kl, js, kl):
        assert torch.allclose(fn(x, x), torch.zeros(16), atol=1e-6)
        assert (fn(x, y) > 0).all()
    assert torch.allclose(symmetric_kl(x, y), symmetric_kl(y, x)) and torch.allclose(js(x, y), js(y, x))
    assert (js(x, y) <= math.log(2)).all()
    disjoint = js(torch.tensor([[60.0, 0.0]]), torch.tensor([[0.0, 60.0]]))  # nearly disjoint supports
    assert disjoint.item() == pytest.approx(math.log(2), abs=1e-6)
    labels = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(2))
    one_hot_teacher = F.one_hot(labels, 10).float() * 100.0  # softmax is one-hot to float precision
    assert torch.allclose(soft_ce(x, one_hot_teacher), ce(x, labels), atol=1e-5)


def test_extreme_logits_stay_finite():
    s = torch.tensor([[1e4, -1e4, 0.0]], dtype=torch.bfloat16)
    t = torch.tensor([[-1e4, 1e4, 0.0]])
    for name in ("symmetric_kl", "soft_ce", "js", "kl"):
        value = get_loss(name, 2.0)(s, t)
        assert value.dtype == torch.float32 and torch.isfinite(value).all(), name


def test_ce_counts_labelled_samples_only():
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = torch.tensor([0, -1, 1])
    per_sample = ce(x, labels)
    assert per_sample[1] == 0 and counted("ce", labels) == 2
    assert reduce(per_sample, counted("ce", labels)).item() == pytest.approx(
        F.cross_entropy(x[[0, 2]], labels[[0, 2]]).item())
    assert counted("symmetric_kl", x) == 3
    assert reduce(torch.zeros(0), counted("js", torch.zeros(0, 2))).item() == 0.0  # an all-skipped batch
