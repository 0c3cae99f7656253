"""Zero-cost scores: rank untrained networks from one or two minibatches, in well under a second.

synflow (Tanaka et al. 2020), NASWOT (Mellor et al. 2021), ZiCo (Li et al. 2023), and a rank
aggregate over a scored population that includes MACs, in the spirit of AZ-NAS (Lee & Ham 2024).
Every score is higher-is-better and is computed on a copy: the network itself is left untouched.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..data import Split

__all__ = ["ZERO_COST_SCORES", "naswot", "rank_aggregate", "synflow", "zero_cost_scores", "zico"]

#: The scores `zero_cost_scores` returns, by name.
ZERO_COST_SCORES = ("synflow", "naswot", "zico")


def _scoring_copy(model: nn.Module, device: torch.device, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A copy with every BatchNorm scale at 1.

    Our networks start residual branches with a zero BatchNorm scale (zero gamma) so that short
    proxies train stably; at that point a branch's own layers have no effect on the output and no
    gradient, and every score would ignore them. The scores are defined on the plain network.
    """
    net = copy.deepcopy(model).to(device=device, dtype=dtype)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.weight is not None:
                m.weight.fill_(1.0)
    return net


def _without_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, nn.Identity())
        else:
            _without_batchnorm(child)


def synflow(model: nn.Module, input_shape: Sequence[int], *, device: torch.device | str = "cpu") -> float:
    """log of SynFlow's saliency summed over all parameters: sum |theta * dR/dtheta| where
    R = sum of the outputs for an all-ones input and every parameter replaced by its absolute
    value (no data is read).

    BatchNorm is left out, as in the zero-cost proxies of Abdelfattah et al. (2021); SynFlow's
    own code evaluates in eval mode at initialisation, where BatchNorm is the same identity up
    to 1/sqrt(1 + eps). The sum runs in float64 and is returned as its logarithm, since the
    product of absolute weights along a deep path overflows float32.
    """
    device = torch.device(device)
    net = _scoring_copy(model, device, torch.float64)
    _without_batchnorm(net)
    net.eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    net.zero_grad(set_to_none=True)
    net(x).sum().backward()
    with torch.no_grad():
        total = sum(float((p * p.grad).sum()) for p in net.parameters() if p.grad is not None)
    if not math.isfinite(total):
        raise FloatingPointError(f"synflow overflowed float64 ({total})")
    return math.log(total) if total > 0 else -math.inf


#: Functions whose positive inputs NASWOT counts as "on" units (ReLU, ReLU6 in our blocks).
_RECTIFIERS = {F.relu, F.relu_, F.relu6, F.hardtanh, F.hardtanh_, torch.relu, torch.relu_}


class _RectifierCodes(TorchFunctionMode):
    """Records, for every rectifier call, which units of each image are on (input > 0). A
    function mode sees the functional ReLUs of our blocks as well as `nn.ReLU` modules."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        if func in _RECTIFIERS:
            self.codes.append((args[0] > 0).flatten(1).to(torch.float64))
        return func(*args, **(kwargs or {}))


@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log |det K| of the binary activation-code kernel of one minibatch (Mellor et al. 2021):
    K[i, j] = number of rectified units on which images i and j agree (N_A minus their Hamming
    distance). Batch statistics in BatchNorm, as the network trains."""
    net = _scoring_copy(model, images.device)
    net.train()
    with _RectifierCodes() as mode:
        net(images)
    if not mode.codes:
        raise ValueError("naswot: the network has no ReLU to read activation codes from")
    codes = torch.cat(mode.codes, dim=1)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    _, logdet = torch.linalg.slogdet(kernel)
    return float(logdet)


def zico(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """ZiCo (Li et al. 2023): sum over the convolution and linear layers of
    log( sum over the layer's weights of mean|g| / std(g) ), where g is a weight's cross-entropy
    gradient on each minibatch (population std; weights whose gradient does not vary are left
    out, as in the authors' code). Needs at least two minibatches."""
    batches = list(batches)
    if len(batches) < 2:
        raise ValueError("zico: needs at least two minibatches (the gradients' spread across them)")
    net = _scoring_copy(model, batches[0][0].device)
    net.train()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for x, y in batches:
        net.zero_grad(set_to_none=True)
        F.cross_entropy(net(x), y).backward()
        for store, layer in zip(grads, layers):
            store.append(layer.weight.grad.detach().flatten().to(torch.float64).clone())
    score = 0.0
    for per_batch in grads:
        g = torch.stack(per_batch)
        std = g.std(dim=0, unbiased=False)
        varying = std > 0
        ratio = float((g.abs().mean(dim=0)[varying] / std[varying]).sum())
        if ratio > 0:
            score += math.log(ratio)
    return score


def zero_cost_scores(model: nn.Module, data: Split, *, mean: Sequence[float], std: Sequence[float],
                     batch_size: int = 64, seed: int = 0, device: torch.device | str = "cpu",
                     scores: Sequence[str] = ("synflow", "naswot", "zico")) -> dict[str, float]:
    """synflow, NASWOT (one minibatch) and ZiCo (two minibatches) of an untrained network on
    `batch_size` random images of `data` (those named in `scores`), plus `zc_s`, the seconds they took."""
    started = time.perf_counter()
    device = torch.device(device)
    sample = data.subset(min(len(data), 2 * batch_size), seed)
    x = sample.images.to(device).float().div_(255)
    x = (x - torch.tensor(mean, device=device).view(1, -1, 1, 1)) / torch.tensor(std, device=device).view(1, -1, 1, 1)
    y = sample.labels.to(device)
    half = max(1, len(sample) // 2)
    batches = [(x[:half], y[:half]), (x[half:], y[half:])]
    score_fns = {
        "synflow": lambda: synflow(model, tuple(x.shape[1:]), device=device),
        "naswot": lambda: naswot(model, x[:half]),
        "zico": lambda: zico(model, batches),
    }
    unknown = set(scores) - set(score_fns)
    if unknown:
        raise ValueError(f"unknown zero-cost score(s) {sorted(unknown)} (allowed: {', '.join(score_fns)})")
    result = {name: score_fns[name]() for name in scores}
    result["zc_s"] = time.perf_counter() - started
    return result


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ascending, ties sharing their average rank."""
    less = (values[None, :] < values[:, None]).sum(axis=1)
    equal = (values[None, :] == values[:, None]).sum(axis=1)
    return less + (equal + 1) / 2.0


def rank_aggregate(columns: Mapping[str, Sequence[float]]) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation: sum over the scores of log(rank / m), each score
    ranked ascending over the m architectures (the best gets rank m, so log 0). A low rank on any
    one score costs much more than a high rank elsewhere gains: architectures good on every score
    come first. All columns are higher-is-better (pass MACs as they are: in a budget, more
    compute tends to mean more accuracy); a NaN ranks below every number."""
    if not columns:
        raise ValueError("rank_aggregate: no scores given")
    arrays = [np.asarray(v, dtype=float) for v in columns.values()]
    m = len(arrays[0])
    if any(len(a) != m for a in arrays):
        raise ValueError("rank_aggregate: every score needs one value per architecture")
    total = np.zeros(m)
    for a in arrays:
        total += np.log(_average_ranks(np.where(np.isnan(a), -np.inf, a)) / m)
    return total
