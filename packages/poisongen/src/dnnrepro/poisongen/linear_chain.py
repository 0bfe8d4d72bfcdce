"""Fast finite-difference sweep for fully connected targets (the authors' MNIST model).

The faithful direct method needs, for each of D perturbed copies x_k of a poison, the normal loss
after one SGD step on (x_k, y). For a chain of Linear layers and elementwise activations, the step
on one example changes each layer by a rank-one term: W_l' = W_l - r_w e_l a_lᵀ and
b_l' = b_l - r_b e_l, where a_l is the layer's input and e_l = dCE/dz_l its output error for that
example. So the updated layer applied to a normal input h is

    z_l'(h) = W_l h + b_l - r_w e_l (a_l · h) - r_b e_l,

which needs dot products instead of D materialised weight copies. The result equals a full
re-training step per copy (tested against the coordinate loop in float64); it is only faster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.models import MLP

ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Softplus)

Step = tuple[str, object]  # ("linear", parameter-name prefix) or ("act", module)


def chain_of(model: nn.Module) -> list[Step] | None:
    """The model as a list of Linear layers and elementwise activations, or None if it is not one.

    Accepts the core's MLP and an nn.Sequential of Flatten/Linear/elementwise activations.
    """
    if isinstance(model, MLP):
        seq, prefix = model.layers, "layers."
    elif isinstance(model, nn.Sequential):
        seq, prefix = model, ""
    else:
        return None
    steps: list[Step] = []
    for name, module in seq.named_children():
        if isinstance(module, nn.Linear):
            steps.append(("linear", f"{prefix}{name}."))
        elif isinstance(module, ELEMENTWISE):
            steps.append(("act", module))
        elif not isinstance(module, nn.Flatten | nn.Identity):
            return None
    return steps if any(kind == "linear" for kind, _ in steps) else None


def losses_after_steps(
    steps: list[Step],
    params: Mapping[str, torch.Tensor],
    rate: Callable[[str], float],
    xs: torch.Tensor,
    y: torch.Tensor,
    xn: torch.Tensor,
    yn: torch.Tensor,
) -> torch.Tensor:
    """Summed CE on (xn, yn) after one SGD step on each (xs[k], y): a (K,) tensor.

    xs (K, ...) probes, y a scalar label, xn (N, ...) normal inputs, yn (N,) their labels;
    ``rate(name)`` is the step size of parameter ``name``.
    """
    k = len(xs)
    a = xs.flatten(1).detach().requires_grad_(True)  # a leaf so the errors below have a graph
    inputs, outputs = [], []
    with torch.enable_grad():
        h = a
        for kind, s in steps:
            if kind == "linear":
                inputs.append(h)
                h = F.linear(h, params[s + "weight"], params.get(s + "bias"))
                outputs.append(h)
            else:
                h = s(h)
        loss = F.cross_entropy(h, y.expand(k), reduction="sum")  # sum: each probe its own step
        errors = torch.autograd.grad(loss, outputs)
    with torch.no_grad():
        h = xn.flatten(1)  # (N, D), shared by every probe until the first updated layer
        i = 0
        for kind, s in steps:
            if kind != "linear":
                h = s(h)
                continue
            w, b = params[s + "weight"], params.get(s + "bias")
            e, a_in = errors[i], inputs[i].detach()  # (K, out), (K, in)
            base = h @ w.T  # (N, out) or (K, N, out)
            dots = a_in @ h.T if h.ndim == 2 else torch.einsum("ki,kni->kn", a_in, h)  # (K, N)
            z = base - rate(s + "weight") * e[:, None, :] * dots[:, :, None]
            if b is not None:
                z = z + b - rate(s + "bias") * e[:, None, :]
            h = z
            i += 1
        n = len(xn)
        return (
            F.cross_entropy(h.reshape(k * n, -1), yn.repeat(k), reduction="none").view(k, n).sum(1)
        )
