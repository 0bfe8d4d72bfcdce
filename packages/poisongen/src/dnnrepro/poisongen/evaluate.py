"""The re-training protocol: how much do poisons hurt the victim when it re-trains on them?

Three modes, all starting from the pretrained weights and working on a private copy of the model
(the caller's model and tensors are never modified):

- ``per_point`` (the authors' protocol): for each poison separately, one SGD step (batch 1, bias lr
  2x) from the pretrained weights, then test accuracy and the normal loss; averaged over poisons.
- ``sequential``: the victim takes one step per poison, one after another, without resetting;
  accuracy after the first k poisons for each k in ``counts`` (accuracy vs number of poisons).
- ``fraction``: one re-training epoch over ``retrain`` clean samples mixed with poisons so that a
  fraction p of the epoch is poisoned, for each p in ``fractions`` (batch ``batch_size``, shuffled).

Accuracies are fractions in [0, 1]; drops are reported in percentage points (pp).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from dnnrepro.core.errors import ConfigError, DataError

from .retrain import (
    Retraining,
    accuracy_and_loss,
    check_images,
    check_pair,
    frozen_copy,
    sgd_step,
    summed_loss,
)

MODES = ("per_point", "sequential", "fraction")


def evaluate(
    model,
    poisons,
    test,
    normal=None,
    mode: str = "per_point",
    retraining: Retraining | None = None,
    counts: Sequence[int] = (0, 1, 2, 5, 10, 20),
    fractions: Sequence[float] = (0.0, 0.01, 0.02, 0.05, 0.1),
    retrain=None,
    batch_size: int = 1,
    seed: int = 0,
) -> dict:
    """Measure the effect of ``poisons`` = (x_p, y_p) on ``model`` re-trained by ``retraining``.

    ``test`` = (x, y) gives test accuracy and loss; ``normal`` = (x, y), optional, gives the normal
    loss (summed cross-entropy, the attacker's objective). Returns a dict with ``before`` (metrics of
    the pretrained model) and the mode's results; see the module doc.
    """
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, not {mode!r}")
    xp, yp = check_pair(poisons, "poisons")
    xt, yt = check_pair(test, "test data")
    check_images(xp, tuple(xt.shape[1:]), "poisons")
    rule = retraining or Retraining()
    net, w0 = frozen_copy(model)

    def metrics(params) -> dict:
        acc, loss = accuracy_and_loss(net, params, (xt, yt))
        out = {"test_accuracy": acc, "test_loss": loss}
        if normal is not None:
            with torch.no_grad():
                out["normal_loss"] = float(summed_loss(net, params, *normal))
        return out

    before = metrics(w0)
    result: dict = {"mode": mode, "before": before, "n_poisons": len(xp)}
    if mode == "per_point":
        rows = [
            metrics(sgd_step(net, w0, xp[i : i + 1], yp[i : i + 1], rule)) for i in range(len(xp))
        ]
        after = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        result.update(
            after=after,
            per_poison_accuracy=[r["test_accuracy"] for r in rows],
            accuracy_drop_pp=100 * (before["test_accuracy"] - after["test_accuracy"]),
        )
    elif mode == "sequential":
        counts = sorted(set(int(c) for c in counts))
        if counts[0] < 0 or counts[-1] > len(xp):
            raise ConfigError(
                f"counts must lie in 0..{len(xp)} (the number of poisons), got {counts}"
            )
        w, curve = w0, []
        for k in range(counts[-1] + 1):
            if k in counts:
                curve.append({"count": k, **metrics(w)})
            if k < counts[-1]:
                w = sgd_step(net, w, xp[k : k + 1], yp[k : k + 1], rule)
        result.update(
            curve=curve,
            accuracy_drop_pp=100 * (before["test_accuracy"] - curve[-1]["test_accuracy"]),
        )
    else:
        xr, yr = check_pair(retrain, "retrain (clean re-training data)")
        check_images(xr, tuple(xt.shape[1:]), "retrain images")
        if not (isinstance(batch_size, int) and batch_size >= 1):
            raise ConfigError(f"batch_size must be an integer >= 1, not {batch_size!r}")
        curve = []
        for p in fractions:
            if not 0 <= p < 1:
                raise ConfigError(f"fractions must lie in [0, 1), got {p}")
            n_p = round(p * len(xr) / (1 - p))
            if n_p > len(xp):
                raise DataError(
                    f"fraction {p} of {len(xr)} clean samples needs {n_p} poisons, only {len(xp)} given"
                )
            x = torch.cat([xr, xp[:n_p]])
            y = torch.cat([yr, yp[:n_p]])
            order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
            w = w0
            for i in range(0, len(x), batch_size):
                idx = order[i : i + batch_size]
                w = sgd_step(net, w, x[idx], y[idx], rule)
            curve.append({"fraction": p, "n_poisons": n_p, **metrics(w)})
        result.update(curve=curve)
    return result
