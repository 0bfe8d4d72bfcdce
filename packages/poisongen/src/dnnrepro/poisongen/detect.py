"""The countermeasure: flag training inputs whose loss under the current model is too high.

The paper's abstract proposes detecting the attack "by checking the loss of the target model". A
poison carries the label (y + 1) mod C and is optimised to hurt the model, so its per-input loss is
high. :class:`LossDetector` calibrates a threshold tau as the ``quantile`` of per-input
cross-entropy on a clean held-out set and flags an input when its loss exceeds tau. On clean data
from the same distribution the false-positive rate is therefore about 1 - quantile.
Interface follows ART's poison filters: ``detect(x, y) -> (report, is_clean)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dnnrepro.core.errors import ConfigError, DataError

from .retrain import check_images, check_labels, check_pair, frozen_copy, num_classes_of


def roc_auc(scores, positive) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed from average ranks (Mann-Whitney U). NaN when one class is empty.
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(scores, positive) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) for 'flag when score >= threshold', thresholds from high to low."""
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if pos.sum() == 0 or (~pos).sum() == 0:
        raise DataError("roc_curve needs at least one positive and one negative example")
    thresholds = np.concatenate([[np.inf], np.unique(s)[::-1]])
    tpr = np.array([(s[pos] >= t).mean() for t in thresholds])
    fpr = np.array([(s[~pos] >= t).mean() for t in thresholds])
    return fpr, tpr, thresholds


class LossDetector:
    """Loss-threshold poison filter.

    Args:
        model: the current (pretrained) model; copied, never modified.
        clean_holdout: (images (N, C, H, W), labels (N,)) of clean data the model was not
            trained on; tau is their per-input loss ``quantile``.
        quantile: in (0, 1), e.g. 0.99 (expected false-positive rate 1%).
    """

    def __init__(self, model, clean_holdout, quantile: float = 0.99, batch_size: int = 1000):
        if not (isinstance(quantile, int | float) and 0 < quantile < 1):
            raise ConfigError(f"quantile must lie strictly between 0 and 1, got {quantile!r}")
        x, y = check_pair(clean_holdout, "clean_holdout")
        if x.ndim != 4:
            raise DataError(f"clean_holdout images must be (N, C, H, W), got {tuple(x.shape)}")
        self.model, self.params = frozen_copy(model)
        self.input_shape = tuple(x.shape[1:])
        self.num_classes = num_classes_of(self.model, self.params, x)
        check_labels(y, self.num_classes, "clean_holdout labels")
        self.batch_size, self.quantile = batch_size, float(quantile)
        self.holdout_losses = self.losses(x, y)
        self.threshold = float(torch.quantile(self.holdout_losses.double(), self.quantile))

    @torch.no_grad()
    def losses(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-input cross-entropy (N,) of the model on (x, y), in nats."""
        check_pair((x, y), "inputs to check")
        check_images(x, self.input_shape, "inputs to check")
        check_labels(y, self.num_classes, "labels of the inputs to check")
        out = []
        for i in range(0, len(x), self.batch_size):
            logits = functional_call(self.model, self.params, (x[i : i + self.batch_size],))
            out.append(F.cross_entropy(logits, y[i : i + self.batch_size], reduction="none"))
        return torch.cat(out)

    def detect(
        self, x: torch.Tensor, y: torch.Tensor, is_poison: torch.Tensor | None = None
    ) -> tuple[dict, torch.Tensor]:
        """Flag inputs with loss > tau. Returns (report, is_clean (N,) bool).

        The report holds the threshold, counts and the flagged fraction; with ground truth
        ``is_poison`` (N,) bool it adds tpr (flagged poisons / poisons), fpr (flagged clean / clean)
        and auc (ROC area of the loss as a poison score).
        """
        scores = self.losses(x, y)
        flagged = scores > self.threshold
        report = {
            "quantile": self.quantile,
            "threshold": self.threshold,
            "n": len(x),
            "n_flagged": int(flagged.sum()),
            "flagged_fraction": float(flagged.float().mean()),
        }
        if is_poison is not None:
            truth = torch.as_tensor(is_poison, dtype=torch.bool, device=flagged.device)
            if truth.shape != flagged.shape:
                raise DataError(f"is_poison must have shape ({len(x)},), got {tuple(truth.shape)}")
            n_pos, n_neg = int(truth.sum()), int((~truth).sum())
            report.update(
                n_poison=n_pos,
                n_clean=n_neg,
                tpr=float(flagged[truth].float().mean()) if n_pos else float("nan"),
                fpr=float(flagged[~truth].float().mean()) if n_neg else float("nan"),
                auc=roc_auc(scores.cpu().numpy(), truth.cpu().numpy()),
            )
        return report, ~flagged
