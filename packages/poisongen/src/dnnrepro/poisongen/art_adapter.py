"""The attacks and the detector as Adversarial Robustness Toolbox (ART) classes.

Optional: needs ``pip install "dnnrepro-poisongen[art]"`` (adversarial-robustness-toolbox).

- :class:`ArtPoisoningAttack` is an ART ``PoisoningAttackWhiteBox`` on an ART
  ``PyTorchClassifier``: ``poison(x, y) -> (x_poison, y_poison)`` with numpy arrays, labels as
  class indices or one-hot (returned in the format given), for the direct or generative method.
- :class:`ArtLossDefence` is an ART ``PoisonFilteringDefence``: ``detect_poison() -> (report,
  is_clean_lst)`` over its ``x_train``, ``evaluate_defence(is_clean) -> JSON`` confusion matrix.
- :func:`compare_defences` runs our loss filter next to ART's ``ActivationDefence`` and
  ``SpectralSignatureDefense`` on the same training set (clean data plus poisons).
"""

from __future__ import annotations

import json

import numpy as np
import torch

from dnnrepro.core.errors import ConfigError

try:
    from art.attacks.attack import PoisoningAttackWhiteBox
    from art.defences.detector.poison import PoisonFilteringDefence
    from art.estimators.classification import PyTorchClassifier
except ImportError as exc:  # pragma: no cover - exercised where ART is absent
    raise ImportError(
        "dnnrepro.poisongen.art_adapter needs adversarial-robustness-toolbox; install it with "
        "pip install 'dnnrepro-poisongen[art]'"
    ) from exc

from .detect import LossDetector, roc_auc
from .direct import DirectGradientAttack
from .generative import GenerativeAttack

METHODS = ("direct", "generative")


def _labels(y: np.ndarray) -> tuple[torch.Tensor, bool]:
    """Class indices (N,) from indices or one-hot (N, C), and whether they were one-hot."""
    y = np.asarray(y)
    onehot = y.ndim == 2
    return torch.as_tensor(y.argmax(1) if onehot else y, dtype=torch.int64), onehot


def _images(x: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x, dtype=np.float32))


def _clip(classifier) -> tuple[float, float]:
    cv = classifier.clip_values
    return (0.0, 1.0) if cv is None else (float(np.min(cv[0])), float(np.max(cv[1])))


class ArtPoisoningAttack(PoisoningAttackWhiteBox):
    """Our direct (``method="direct"``) or generative attack behind ART's poisoning interface.

    ``classifier``: an ART ``PyTorchClassifier`` (white box: its torch model is attacked, never
    modified); ``x_clean, y_clean``: the clean data the attacker sees (numpy, (N, C, H, W)).
    Other keyword arguments go to :class:`DirectGradientAttack` / :class:`GenerativeAttack`; the
    generative attack is fitted here.
    """

    attack_params = ["method"]
    _estimator_requirements = (PyTorchClassifier,)

    def __init__(self, classifier, x_clean, y_clean, method: str = "direct", **kwargs):
        super().__init__(classifier)
        if method not in METHODS:
            raise ConfigError(f"method must be one of {METHODS}, not {method!r}")
        self.method = method
        clean = (_images(x_clean), _labels(y_clean)[0])
        model = classifier.model
        if method == "direct":
            self.attack = DirectGradientAttack(model, clean, clip=_clip(classifier), **kwargs)
        else:
            self.attack = GenerativeAttack(model, clean, **kwargs).fit()

    def poison(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs):
        """Poisons from seeds x (N, C, H, W); y: their true labels (indices or one-hot; None: the
        classifier's predictions). Returns (x_poison, y_poison = (y + 1) mod C, same format)."""
        if y is None:
            y = self.estimator.predict(np.asarray(x, dtype=np.float32)).argmax(1)
        labels, onehot = _labels(y)
        x_p, y_p = self.attack.poison(_images(x), labels)
        y_out = y_p.numpy()
        if onehot:
            y_out = np.eye(np.asarray(y).shape[1], dtype=np.asarray(y).dtype)[y_out]
        return x_p.numpy(), y_out


class ArtLossDefence(PoisonFilteringDefence):
    """The paper's countermeasure as an ART poison filter: flag training inputs whose loss under
    the classifier exceeds the ``quantile`` of the losses on clean held-out data."""

    defence_params = ["classifier", "quantile"]

    def __init__(self, classifier, x_train, y_train, x_holdout, y_holdout, quantile=0.99):
        super().__init__(classifier, x_train, y_train)
        self.quantile = quantile
        self.detector = LossDetector(
            classifier.model, (_images(x_holdout), _labels(y_holdout)[0]), quantile=quantile
        )
        self.is_clean_lst: list[int] | None = None

    def detect_poison(self, **kwargs) -> tuple[dict, list[int]]:
        """Returns (report, is_clean_lst): the report maps each suspected index to its loss and
        holds the threshold; is_clean_lst[i] = 1 when x_train[i] looks clean, 0 when flagged."""
        self.set_params(**kwargs)
        x, y = _images(self.x_train), _labels(self.y_train)[0]
        losses = self.detector.losses(x, y)
        flagged = (losses > self.detector.threshold).numpy()
        report = {
            "threshold": self.detector.threshold,
            "quantile": self.detector.quantile,
            "suspected": {int(i): float(losses[i]) for i in np.flatnonzero(flagged)},
        }
        self.is_clean_lst = [int(not f) for f in flagged]
        return report, self.is_clean_lst

    def evaluate_defence(self, is_clean: np.ndarray, **kwargs) -> str:
        """JSON confusion matrix of the last detection against ground truth ``is_clean`` (1 clean,
        0 poison): counts and rates, as ART's defences report them."""
        if self.is_clean_lst is None:
            self.detect_poison(**kwargs)
        return json.dumps(confusion(np.asarray(is_clean), np.asarray(self.is_clean_lst)))

    def _check_params(self) -> None:
        if not 0 < self.quantile < 1:
            raise ConfigError(f"quantile must lie strictly between 0 and 1, got {self.quantile!r}")


def confusion(is_clean_true: np.ndarray, is_clean_pred: np.ndarray) -> dict:
    """Detection counts and rates: poisons are the positives (is_clean == 0)."""
    poison, flagged = is_clean_true == 0, is_clean_pred == 0
    tp, fp = int((poison & flagged).sum()), int((~poison & flagged).sum())
    fn, tn = int((poison & ~flagged).sum()), int((~poison & ~flagged).sum())
    return {
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
        "true_negatives": tn,
        "tpr": tp / (tp + fn) if tp + fn else float("nan"),
        "fpr": fp / (fp + tn) if fp + tn else float("nan"),
    }


def compare_defences(classifier, x_train, y_train, is_poison, x_holdout, y_holdout, quantile=0.99):
    """TPR/FPR of our loss filter, ART's ActivationDefence and SpectralSignatureDefense on the
    same training set (numpy; ``is_poison`` (N,) bool). Returns {defence: confusion dict}; our
    filter also gets its ROC AUC."""
    from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense

    is_clean = (~np.asarray(is_poison, dtype=bool)).astype(int)
    out = {}
    ours = ArtLossDefence(classifier, x_train, y_train, x_holdout, y_holdout, quantile)
    _, pred = ours.detect_poison()
    out["loss threshold (ours)"] = confusion(is_clean, np.asarray(pred))
    scores = ours.detector.losses(_images(x_train), _labels(y_train)[0]).numpy()
    out["loss threshold (ours)"]["auc"] = roc_auc(scores, ~is_clean.astype(bool))
    onehot = y_train if np.asarray(y_train).ndim == 2 else np.eye(classifier.nb_classes)[y_train]
    act = ActivationDefence(classifier, x_train, onehot)
    _, pred = act.detect_poison(nb_clusters=2, nb_dims=10, reduce="PCA")
    out["ART ActivationDefence"] = confusion(is_clean, np.asarray(pred))
    frac = float(np.mean(is_poison))
    spec = SpectralSignatureDefense(
        classifier, x_train, onehot, expected_pp_poison=max(frac, 1e-3), eps_multiplier=1.5
    )
    _, pred = spec.detect_poison()
    out["ART SpectralSignatureDefense"] = confusion(is_clean, np.asarray(pred))
    return out


def defence_table(
    model,
    train,
    holdout,
    n_poisons: int = 20,
    seed: int = 0,
    quantile: float = 0.99,
    rounds: int = 10,
) -> dict:
    """Our filter vs ART's two defences, one training set per kind of poison.

    ``model``: the pretrained target; ``train`` = (x, y) torch tensors, the victim's clean
    training data; ``holdout`` = (x, y) clean data for our threshold. For each kind (direct,
    generative, label-flip control), ``n_poisons`` poisons made from training seeds are appended
    to the rest of the training data, and the three defences filter that set.
    Returns {kind: {defence: confusion dict}} plus the setting.
    """
    from .retrain import flip_labels

    x, y = train
    gen = torch.Generator().manual_seed(10_000 + seed)
    perm = torch.randperm(len(x), generator=gen)
    seeds, rest = perm[:n_poisons], perm[n_poisons:]
    x_seed, y_seed = x[seeds], y[seeds]
    clf = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    torch.manual_seed(seed)
    poisons = {
        "direct-faithful": DirectGradientAttack(model, train, seed=seed).poison(x_seed, y_seed),
        "generative-faithful": GenerativeAttack(model, train, rounds=rounds, seed=seed)
        .fit()
        .poison(x_seed, y_seed),
        "label-flip": (x_seed, flip_labels(y_seed)),
    }
    table = {}
    for kind, (x_p, y_p) in poisons.items():
        x_all = torch.cat([x[rest], x_p]).numpy()
        y_all = torch.cat([y[rest], y_p]).numpy()
        is_poison = np.r_[np.zeros(len(rest), bool), np.ones(len(x_p), bool)]
        table[kind] = compare_defences(
            clf, x_all, y_all, is_poison, holdout[0].numpy(), holdout[1].numpy(), quantile
        )
    return {
        "n_clean": len(rest),
        "n_poisons": n_poisons,
        "quantile": quantile,
        "seed": seed,
        "table": table,
    }


def table_markdown(result: dict) -> str:
    """The comparison as a markdown table (TPR / FPR per poison kind and defence)."""
    lines = [
        "| poisons | defence | TPR | FPR |",
        "|---|---|---|---|",
    ]
    for kind, rows in result["table"].items():
        for name, r in rows.items():
            lines.append(f"| {kind} | {name} | {r['tpr']:.2f} | {r['fpr']:.3f} |")
    return "\n".join(lines)
