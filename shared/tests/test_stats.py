import math

import pytest
import scipy.stats as scipy_stats  # the reference (scipy comes with scikit-learn, a test dep)

from dnnrepro.core import stats


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 30, 250])
@pytest.mark.parametrize("p", [0.5, 0.6, 0.9, 0.975, 0.995, 0.025])
def test_t_quantile_matches_scipy(p, df):
    assert stats.t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize(
    "values",
    [[0.95, 0.97], [0.55, 6.69, -2.51, -2.53], [1.0, 1.0, 1.0], [31.0, 31.9, 35.6, 29.1, 30.0]],
)
def test_t_interval_matches_scipy(values):
    iv = stats.t_interval(values)
    mean = sum(values) / len(values)
    sem = scipy_stats.sem(values) if len(set(values)) > 1 else 0.0
    lo, hi = (
        scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=sem) if sem else (mean, mean)
    )
    assert (iv.mean, iv.n, iv.method) == (pytest.approx(mean), len(values), "t")
    assert iv.low == pytest.approx(lo, rel=1e-9) and iv.high == pytest.approx(hi, rel=1e-9)


def test_t_interval_refuses_too_few_or_nan():
    with pytest.raises(ValueError):
        stats.t_interval([1.0])
    with pytest.raises(ValueError):
        stats.t_interval([1.0, math.nan])


def test_wilson_interval_known_values():
    # Wilson score interval, closed form for 980/1000 and 0/364
    lo, hi = stats.binomial_interval(0.98, 1000)
    z = scipy_stats.norm.ppf(0.975)
    n, p = 1000, 0.98
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (lo, hi) == (pytest.approx(centre - half), pytest.approx(centre + half))
    assert stats.binomial_interval(0.0, 364)[0] == 0.0 and stats.binomial_interval(0.0, 364)[1] > 0
    with pytest.raises(ValueError):
        stats.binomial_interval(1.2, 10)


def test_difference_halfwidth_is_the_normal_approximation():
    z = scipy_stats.norm.ppf(0.975)
    assert stats.difference_halfwidth(1000) == pytest.approx(z * math.sqrt(0.5 / 1000))
    assert stats.difference_halfwidth(1000, p=0.98) < stats.difference_halfwidth(1000)
