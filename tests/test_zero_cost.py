"""Zero-cost scores against values worked out by hand or by an independent formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.data import Split
from nas.model import build_model
from nas.training.zero_cost import naswot, rank_aggregate, synflow, zero_cost_scores, zico
from search_spaces import reference


class TwoLayer(nn.Module):
    """1x1 convolution -> (optional BatchNorm) -> ReLU -> global average pool -> linear."""

    def __init__(self, batchnorm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1, bias=False)
        self.bn = nn.BatchNorm2d(3) if batchnorm else nn.Identity()
        self.fc = nn.Linear(3, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _two_layer(seed: int = 0, batchnorm: bool = False) -> TwoLayer:
    torch.manual_seed(seed)
    net = TwoLayer(batchnorm)
    with torch.no_grad():
        net.fc.bias.copy_(torch.tensor([0.5, -0.25, 0.0, 1.0]))
        if batchnorm:
            net.bn.weight.copy_(torch.tensor([5.0, -2.0, 0.0]))  # must not matter: BN is left out
            net.bn.bias.copy_(torch.tensor([1.0, 1.0, 1.0]))
    return net


def test_synflow_equals_twice_the_path_sum_plus_the_bias_term():
    # With |weights| and an all-ones input the network is linear in each layer's weights, so by
    # Euler's theorem each layer's sum of theta * dR/dtheta is R itself; the bias adds |b|.
    net = _two_layer()
    w1 = net.conv.weight.detach().abs().double().numpy().reshape(3, 2)
    w2 = net.fc.weight.detach().abs().double().numpy()
    b = net.fc.bias.detach().abs().double().numpy()
    r = (w2 @ w1 @ np.ones(2)).sum() + b.sum()
    path_sum = r - b.sum()
    expected = math.log(2 * path_sum + b.sum())
    assert synflow(net, (2, 5, 5)) == pytest.approx(expected, rel=1e-12)


def test_synflow_leaves_batchnorm_out_and_the_network_untouched():
    plain, with_bn = _two_layer(), _two_layer(batchnorm=True)
    before = {k: v.clone() for k, v in with_bn.state_dict().items()}
    assert synflow(with_bn, (2, 3, 3)) == pytest.approx(synflow(plain, (2, 3, 3)), rel=1e-12)
    assert all(torch.equal(before[k], v) for k, v in with_bn.state_dict().items())
    assert all(p.grad is None for p in with_bn.parameters())


class FunctionalRelus(nn.Module):
    """One nn.ReLU module and one functional relu: NASWOT must see both."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.relu = nn.ReLU()
        self.b = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h1 = self.relu(self.a(x.flatten(1)))
        return F.relu(self.b(h1))


def test_naswot_is_the_log_determinant_of_the_hamming_kernel():
    torch.manual_seed(3)
    net = FunctionalRelus()
    x = torch.randn(6, 1, 2, 2)
    # Independent: the codes from the pre-activations, and K from Hamming distances one pair at a time.
    with torch.no_grad():
        z1 = net.a(x.flatten(1))
        z2 = net.b(torch.relu(z1))
    codes = torch.cat([z1 > 0, z2 > 0], dim=1).numpy()
    n_units = codes.shape[1]
    kernel = np.array([[n_units - np.sum(ci != cj) for cj in codes] for ci in codes], dtype=float)
    sign, logdet = np.linalg.slogdet(kernel)
    assert sign != 0
    assert naswot(net, x) == pytest.approx(logdet, rel=1e-9)


def test_naswot_refuses_a_network_without_relus():
    with pytest.raises(ValueError, match="no ReLU"):
        naswot(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(3, 1, 2, 2))


def test_zico_matches_the_closed_form_gradient_of_a_linear_classifier():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    batches = [(torch.randn(5, 1, 2, 2), torch.randint(0, 3, (5,))) for _ in range(3)]
    w = net[1].weight.detach().numpy().astype(np.float64)
    b = net[1].bias.detach().numpy().astype(np.float64)
    grads = []
    for x, y in batches:
        xs = x.flatten(1).numpy().astype(np.float64)
        z = xs @ w.T + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y.numpy()] -= 1.0  # d(mean CE)/dz = (softmax - onehot) / n
        grads.append((p.T @ xs / len(y)).ravel())
    g = np.array(grads)
    std = g.std(axis=0)
    expected = math.log(np.sum(np.abs(g).mean(axis=0)[std > 0] / std[std > 0]))
    assert zico(net, batches) == pytest.approx(expected, rel=1e-5)


def test_zico_needs_two_minibatches():
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="two minibatches"):
        zico(net, [(torch.randn(2, 1, 2, 2), torch.tensor([0, 1]))])


def test_rank_aggregate_sums_log_relative_ranks():
    got = rank_aggregate({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    # ranks a: 1, 2, 3; b: 3, 1, 2 (of m = 3)
    expected = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) + math.log(1 / 3),
                math.log(3 / 3) + math.log(2 / 3)]
    assert got == pytest.approx(expected)


def test_rank_aggregate_shares_tied_ranks_and_puts_nan_last():
    got = rank_aggregate({"a": [5.0, 5.0, float("nan"), 7.0]})
    assert got == pytest.approx([math.log(2.5 / 4), math.log(2.5 / 4), math.log(1 / 4), 0.0])
    with pytest.raises(ValueError, match="one value per architecture"):
        rank_aggregate({"a": [1.0, 2.0], "b": [1.0]})


def test_zero_cost_scores_on_a_paper_network_are_finite_and_leave_it_untouched():
    arch = reference("shufflenet_v1_g3_0.25x", num_classes=10, in_channels=1, resolution=16)
    torch.manual_seed(0)
    model = build_model(arch)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    data = Split(torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=gen),
                 torch.randint(0, 10, (40,), generator=gen))
    scores = zero_cost_scores(model, data, mean=(0.5,), std=(0.25,), batch_size=8)
    assert set(scores) == {"synflow", "naswot", "zico", "zc_s"}
    assert all(math.isfinite(v) for v in scores.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
