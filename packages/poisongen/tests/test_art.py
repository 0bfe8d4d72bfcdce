"""The ART adapter, run through ART's own classes (skips, saying why, when ART is absent)."""

import json

import numpy as np
import pytest
import torch

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.train import TrainConfig

art = pytest.importorskip(
    "art",
    reason="adversarial-robustness-toolbox is not installed (pip install 'dnnrepro-poisongen[art]')",
)
from art.attacks.attack import PoisoningAttackWhiteBox  # noqa: E402
from art.defences.detector.poison import PoisonFilteringDefence  # noqa: E402
from art.estimators.classification import PyTorchClassifier  # noqa: E402

from dnnrepro.poisongen.art_adapter import (  # noqa: E402
    ArtLossDefence,
    ArtPoisoningAttack,
    compare_defences,
)


@pytest.fixture
def classifier(tiny):
    model, (x, y) = tiny
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    clf = PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=(1, 4, 4),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    return clf, x.numpy(), y.numpy()


@pytest.mark.parametrize("method", ["direct", "generative"])
def test_attack_is_an_art_whitebox_poisoning_attack(classifier, method):
    clf, x, y = classifier
    kwargs = {"rounds": 1, "num_normal": 5}
    if method == "generative":
        kwargs["pretrain"] = TrainConfig(epochs=1, batch_size=8, lr=1e-2, optimizer="adam")
    attack = ArtPoisoningAttack(clf, x, y, method=method, **kwargs)
    assert isinstance(attack, PoisoningAttackWhiteBox)
    x_p, y_p = attack.poison(x[:4], y[:4])
    assert x_p.shape == (4, 1, 4, 4) and x_p.dtype == np.float32
    assert np.array_equal(y_p, (y[:4] + 1) % 10)
    onehot = np.eye(10, dtype=np.float32)[y[:4]]
    _, y_oh = attack.poison(x[:4], onehot)
    assert y_oh.shape == (4, 10) and np.array_equal(y_oh.argmax(1), (y[:4] + 1) % 10)


def test_attack_refuses_a_non_art_estimator(tiny):
    model, (x, y) = tiny
    with pytest.raises(Exception, match="PyTorchClassifier|estimator"):
        ArtPoisoningAttack(model, x.numpy(), y.numpy())
    clf = PyTorchClassifier(
        model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(1, 4, 4), nb_classes=10
    )
    with pytest.raises(ConfigError, match="method"):
        ArtPoisoningAttack(clf, x.numpy(), y.numpy(), method="magic")


def test_defence_is_an_art_poison_filter_and_flags_the_poisons(classifier):
    clf, x, y = classifier
    attack = ArtPoisoningAttack(clf, x, y, rounds=2, num_normal=5)
    x_p, y_p = attack.poison(x[:5], y[:5])
    x_train, y_train = np.concatenate([x[5:], x_p]), np.concatenate([y[5:], y_p])
    is_clean = np.r_[np.ones(35, int), np.zeros(5, int)]
    defence = ArtLossDefence(clf, x_train, y_train, x[:20], y[:20], quantile=0.9)
    assert isinstance(defence, PoisonFilteringDefence)
    report, is_clean_lst = defence.detect_poison()
    assert len(is_clean_lst) == 40 and set(is_clean_lst) <= {0, 1}
    assert set(report["suspected"]) == {i for i, c in enumerate(is_clean_lst) if c == 0}
    matrix = json.loads(defence.evaluate_defence(is_clean))
    assert matrix["true_positives"] + matrix["false_negatives"] == 5
    assert matrix["tpr"] > 0.5  # the flipped, optimised poisons have a high loss
    with pytest.raises(ConfigError, match="quantile"):
        defence.set_params(quantile=1.5)


def test_compare_defences_reports_all_three_on_the_same_data(classifier):
    clf, x, y = classifier
    attack = ArtPoisoningAttack(clf, x, y, rounds=1, num_normal=5)
    x_p, y_p = attack.poison(x[:6], y[:6])
    x_train, y_train = np.concatenate([x, x_p]), np.concatenate([y, y_p])
    is_poison = np.r_[np.zeros(40, bool), np.ones(6, bool)]
    table = compare_defences(clf, x_train, y_train, is_poison, x[:20], y[:20], quantile=0.9)
    assert set(table) == {
        "loss threshold (ours)",
        "ART ActivationDefence",
        "ART SpectralSignatureDefense",
    }
    for row in table.values():
        assert row["true_positives"] + row["false_negatives"] == 6
        assert row["false_positives"] + row["true_negatives"] == 40


def test_cli_compare_defences_writes_the_table(tmp_path, capsys):
    from dnnrepro.core.cli import main

    out = tmp_path / "res"
    rc = main(
        [
            "poisongen",
            "compare-defences",
            "--dataset",
            "digits",
            "--n",
            "3",
            "--target-steps",
            "100",
            "--out",
            str(out),
            "--work-dir",
            str(tmp_path / "runs"),
        ]
    )
    assert rc == 0
    result = json.loads((out / "defences.json").read_text())
    assert set(result["table"]) == {"direct-faithful", "generative-faithful", "label-flip"}
    assert "| poisons | defence | TPR | FPR |" in (out / "defences.md").read_text()
