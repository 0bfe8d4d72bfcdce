"""Poisoning attacks on neural networks and the loss-based countermeasure (Yang et al. 2017).

For evaluating defences. Public API::

    from dnnrepro.poisongen import DirectGradientAttack, GenerativeAttack, LossDetector, evaluate
    x_p, y_p = DirectGradientAttack(model, (x, y)).poison(x_seed, y_seed)
    x_p, y_p = GenerativeAttack(model, (x, y)).fit().poison(x_seed, y_seed)
    report, is_clean = LossDetector(model, (x_hold, y_hold), quantile=0.99).detect(x_p, y_p)
    result = evaluate(model, (x_p, y_p), (x_test, y_test), mode="per_point")
    attack.set_evasion(detector)  # adaptive attacker: poisons kept under the detector's threshold

ART classes (optional extra ``[art]``): ``dnnrepro.poisongen.art_adapter``.
"""

from .detect import LossDetector, roc_auc, roc_curve
from .direct import DirectGradientAttack
from .evaluate import evaluate
from .generative import GenerativeAttack, Generator, pretrain_autoencoder
from .retrain import Retraining, flip_labels
from .targets import TARGETS, TanhLeNet, train_target

__version__ = "0.1.0"

__all__ = [
    "DirectGradientAttack",
    "GenerativeAttack",
    "Generator",
    "LossDetector",
    "Retraining",
    "TARGETS",
    "TanhLeNet",
    "evaluate",
    "flip_labels",
    "pretrain_autoencoder",
    "roc_auc",
    "roc_curve",
    "train_target",
]
