"""Term-by-term check against pytorch-adapt: MK-MMD, gradient reversal, IM and SND on one batch.

Command (from the repository root, in the peer venv of ``peer_side_by_side.py``; seconds)::

    OMP_NUM_THREADS=1 nice -n 19 /work/venvs/padapt/bin/python \\
        packages/conv-m-da/compare/peer_loss_check.py \\
        --out packages/conv-m-da/compare/peer_loss_check.json

Where the two implementations are given the same inputs AND the same settings they must agree to
float precision; the check prints each pair and exits 1 when one differs by more than 1e-5:

- ``mk_mmd(..., estimator="linear")`` vs ``MMDLoss(mmd_type="linear")`` and
  ``estimator="unbiased"`` vs ``MMDLoss(mmd_type="quadratic")`` (their quadratic estimate is the
  U-statistic), both with their ``bandwidth`` set to our bandwidth (the mean pairwise squared
  distance of the joint batch) and ``kernel_scales`` = 1/(2 * 2^k), so that each of their kernels
  exp(-d^2 * scale / bandwidth) is our exp(-d^2 / (2 * 2^k * bandwidth));
- the gradient of ``reverse_gradient(x, c)`` vs their ``GradientReversal(c)``;
- ``information_maximization`` vs their ``IMValidator`` and ``soft_neighborhood_density`` vs their
  ``SNDValidator`` (T = 0.05), both on softmax predictions.

Also reported, not checked: the MMD with THEIR default bandwidth (the median of the
source-source squared distances), the one implementation difference of the MMD term in the side by
side.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from pathlib import Path

import torch

from dnnrepro.conv_m_da.losses import DEFAULT_KERNEL_SCALES, mk_mmd, reverse_gradient
from dnnrepro.conv_m_da.validators import information_maximization, soft_neighborhood_density
from dnnrepro.core.io import write_json

TOLERANCE = 1e-5


def their_validators():
    """pytorch-adapt's IMValidator and SNDValidator, imported without the validators package's
    __init__ (which imports torchvision and scikit-learn for validators not used here)."""
    import pytorch_adapt

    name = "pytorch_adapt.validators"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(Path(pytorch_adapt.__file__).parent / "validators")]
        sys.modules[name] = package
    im = importlib.import_module(f"{name}.im_validator").IMValidator
    snd = importlib.import_module(f"{name}.snd_validator").SNDValidator
    return im, snd


def main(argv: list[str] | None = None) -> int:
    from pytorch_adapt.layers import GradientReversal, MMDLoss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    zs = torch.randn(32, 16, dtype=torch.float64)
    zt = torch.randn(32, 16, dtype=torch.float64) + 0.5
    joint = torch.cat([zs, zt])
    d2 = torch.cdist(joint, joint).pow(2)
    base = float(d2.sum() / (64 * 63))
    scales = torch.tensor([1.0 / (2.0 * k) for k in DEFAULT_KERNEL_SCALES], dtype=torch.float64)
    pairs = {}
    pairs["mmd_linear"] = (
        float(mk_mmd(zs, zt, estimator="linear")),
        float(MMDLoss(kernel_scales=scales.clone(), mmd_type="linear", bandwidth=base)(zs, zt)),
    )
    pairs["mmd_unbiased_vs_quadratic"] = (
        float(mk_mmd(zs, zt, estimator="unbiased")),
        float(MMDLoss(kernel_scales=scales.clone(), mmd_type="quadratic", bandwidth=base)(zs, zt)),
    )
    x = torch.randn(5, 3, requires_grad=True)
    (reverse_gradient(x, 0.7) * torch.arange(3.0)).sum().backward()
    ours_grad = x.grad.clone()
    x.grad = None
    (GradientReversal(0.7)(x) * torch.arange(3.0)).sum().backward()
    pairs["grl_gradient_max_abs_diff"] = (0.0, float((ours_grad - x.grad).abs().max()))
    logits = torch.randn(200, 10) * 3
    preds = torch.softmax(logits, dim=1)
    im_cls, snd_cls = their_validators()
    pairs["im"] = (
        information_maximization(logits),
        float(im_cls(layer="preds")(target_train={"preds": preds})),
    )
    pairs["snd"] = (
        soft_neighborhood_density(logits),
        float(snd_cls(T=0.05)(target_train={"preds": preds})),
    )
    default_bw = float(MMDLoss(kernel_scales=scales.clone(), mmd_type="linear")(zs, zt))
    ok = True
    for name, (ours, theirs) in pairs.items():
        agree = abs(ours - theirs) <= TOLERANCE
        ok &= agree
        print(
            f"{name:28s} ours {ours:+.8f}  theirs {theirs:+.8f}  {'agree' if agree else 'DIFFER'}"
        )
    print(f"{'mmd_linear, their median bw':28s} theirs {default_bw:+.8f} (not checked)")
    if args.out:
        write_json(
            args.out,
            {
                "pairs": {k: {"ours": a, "theirs": b} for k, (a, b) in pairs.items()},
                "tolerance": TOLERANCE,
                "all_agree": ok,
                "mmd_linear_their_default_bandwidth": default_bw,
            },
        )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
