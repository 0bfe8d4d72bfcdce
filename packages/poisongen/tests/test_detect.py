import itertools
import math

import numpy as np
import pytest
import torch

from dnnrepro.core.errors import ConfigError, DataError
from dnnrepro.poisongen import LossDetector, flip_labels, roc_auc, roc_curve


@pytest.mark.parametrize("q", [0, 1, 1.5, -0.1, "0.9"])
def test_quantile_outside_the_open_unit_interval_is_refused(tiny, q):
    model, data = tiny
    with pytest.raises(ConfigError, match="quantile"):
        LossDetector(model, data, quantile=q)


def test_false_positive_rate_on_clean_data_is_near_one_minus_quantile(tiny):
    model, _ = tiny
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(4000, 1, 4, 4, generator=gen)
    with torch.no_grad():  # labels from the model's own noisy view: a same-distribution stream
        y = (model(x) + torch.randn(4000, 10, generator=gen)).argmax(1)
    for q in (0.9, 0.95, 0.99):
        det = LossDetector(model, (x[:2000], y[:2000]), quantile=q)
        report, is_clean = det.detect(x[2000:], y[2000:])
        # binomial bound (4 sigma) on the stream plus the same again for the estimated quantile
        bound = 4 * math.sqrt(2 * q * (1 - q) / 2000)
        assert abs(report["flagged_fraction"] - (1 - q)) <= bound, (q, report)
        assert bool(is_clean.any())  # never flags everything


def test_flipped_labels_are_flagged_and_report_has_rates(tiny):
    model, _ = tiny
    x = torch.rand(600, 1, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)  # clean = the model's own labels (low loss)
    det = LossDetector(model, (x[:300], y[:300]), quantile=0.99)
    xs = torch.cat([x[300:], x[:50]])
    ys = torch.cat([y[300:], flip_labels(y[:50])])
    truth = torch.cat([torch.zeros(300, dtype=torch.bool), torch.ones(50, dtype=torch.bool)])
    report, is_clean = det.detect(xs, ys, truth)
    assert report["tpr"] >= 0.5 and report["fpr"] <= 0.05
    assert report["auc"] > 0.9
    assert is_clean.dtype == torch.bool and is_clean.shape == (350,)
    with pytest.raises(DataError, match="is_poison"):
        det.detect(xs, ys, truth[:10])
    with pytest.raises(DataError, match="shape"):
        det.detect(torch.rand(3, 1, 28, 28), ys[:3])


def test_auc_equals_the_pairwise_count_with_ties():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 5, 40).astype(float)
    pos = rng.random(40) < 0.4
    pairs = [
        1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(s[pos], s[~pos])
    ]
    assert roc_auc(s, pos) == pytest.approx(np.mean(pairs))
    fpr, tpr, _ = roc_curve(s, pos)
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(np.mean(pairs))
    assert math.isnan(roc_auc([1.0, 2.0], [True, True]))
