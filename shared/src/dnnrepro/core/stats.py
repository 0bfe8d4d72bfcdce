"""Intervals for verdicts, with no dependency beyond the standard library.

* :func:`t_quantile` — quantile of Student's t (inverse of its CDF, from the regularized incomplete
  beta function), so the core needs no scipy at import or at run time.
* :func:`t_interval` — the two-sided interval of a mean over seeds: mean ± t(1-α/2, n-1) s/√n.
* :func:`binomial_interval` — Wilson score interval of a proportion measured on ``n`` test examples.
* :func:`difference_halfwidth` — the normal-approximation half-width of a difference of two
  proportions, each measured on ``n`` examples (conservative at p = 0.5 unless ``p`` is given).

All intervals are returned as :class:`Interval` (mean, low, high, n, method).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

CONFIDENCE_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval.

    ``n`` is the number of values (seeds) behind ``mean``; ``method`` names how ``low``/``high``
    were obtained ("t", "t+binomial", "binomial (wilson)", "binomial (difference)", "point",
    "bootstrap (timing)").
    """

    mean: float
    low: float
    high: float
    n: int
    method: str

    def as_dict(self) -> dict:
        return asdict(self)


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(log_front + a * math.log(x) + b * math.log1p(-x))
    # the continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry otherwise
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, not {df}")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (0 < p < 1)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), not {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    hi = 1.0
    while t_cdf(hi, df) < p:  # bracket; df = 1 at p = 0.9995 needs ~640
        hi *= 2.0
    lo = 0.0
    for _ in range(200):  # bisection: monotone CDF, no derivative needed
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def z_quantile(p: float) -> float:
    """The ``p`` quantile of the standard normal."""
    return statistics.NormalDist().inv_cdf(p)


def t_interval(values: list[float], confidence: float = CONFIDENCE_LEVEL) -> Interval:
    """Two-sided t-interval of the mean of ``values`` (needs n >= 2 finite values)."""
    n = len(values)
    if n < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {n}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("a t-interval needs finite values")
    mean = statistics.fmean(values)
    half = t_quantile(0.5 + confidence / 2.0, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n, "t")


def binomial_interval(
    proportion: float, n_examples: int, confidence: float = CONFIDENCE_LEVEL
) -> tuple[float, float]:
    """Wilson score interval (low, high) of a proportion observed on ``n_examples`` examples."""
    if n_examples < 1:
        raise ValueError(f"a binomial interval needs n >= 1 examples, got {n_examples}")
    if not 0.0 <= proportion <= 1.0:
        raise ValueError(f"a proportion must lie in [0, 1], not {proportion}")
    z = z_quantile(0.5 + confidence / 2.0)
    z2n = z * z / n_examples
    centre = (proportion + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(proportion * (1 - proportion) / n_examples + z2n / (4 * n_examples))
    half /= 1.0 + z2n
    return max(0.0, centre - half), min(1.0, centre + half)


def difference_halfwidth(
    n_examples: int, p: float = 0.5, confidence: float = CONFIDENCE_LEVEL
) -> float:
    """Half-width of a difference of two proportions, each on ``n_examples`` examples.

    Normal approximation with independent arms: z √(2 p (1-p) / n). Without the arms' own
    accuracy, p = 0.5 is the conservative (widest) choice.
    """
    if n_examples < 1:
        raise ValueError(f"a binomial interval needs n >= 1 examples, got {n_examples}")
    return z_quantile(0.5 + confidence / 2.0) * math.sqrt(2.0 * p * (1.0 - p) / n_examples)
