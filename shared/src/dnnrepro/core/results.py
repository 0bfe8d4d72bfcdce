"""Claims declared as data, verdicts from intervals, results.json and the rendered READMEs.

A package states its paper's claims once (:class:`Claim`), each with the rule that decides it
(:class:`Rule`) and its kind (``paper``: a result the paper reports, measured here; ``check``: an
invariant or self-consistency test of our implementation; ``by-construction``: a value we set).
``reproduce`` records measured values per claim (one per seed); :func:`decide` turns them into a
95% interval and a verdict:

* *reproduced* — the whole interval satisfies the rule;
* *not reproduced* — the whole interval violates the rule;
* *inconclusive* — the interval straddles the rule's edge (or no interval can be computed);
* *not run at this profile* — the claim is not tested at this profile, or no value was recorded.

Intervals: a t-interval over seeds (n >= 2). With one seed, the binomial test-set interval when the
claim declares ``test_size``; otherwise a ``paper`` claim is at best *inconclusive*. Timing claims
(``timing=True``) are decided on the bootstrap interval of the ratio measured by
``bench.interleaved_ratio``; a busy machine gives *inconclusive (machine busy)*.

:func:`write_results` writes ``paper_results/<pkg>/<profile>/results.json`` (atomically; the
replaced document's summary is appended to ``history.json``), the profile's README, the package
overview ``paper_results/<pkg>/README.md`` and the index ``paper_results/README.md``. Only
``paper`` claims count in headlines.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import stats
from .errors import ConfigError
from .io import write_json, write_text

CONFIDENCE = ("verified", "secondary", "unverified")
KINDS = ("paper", "check", "by-construction")
REPRODUCED, NOT_REPRODUCED, NOT_RUN = "reproduced", "not reproduced", "not run at this profile"
INCONCLUSIVE = "inconclusive"
BUSY = "inconclusive (machine busy)"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, BUSY, NOT_RUN)
PROFILE_ORDER = ("smoke", "small", "paper")
BUSY_SHARE = 0.25  # as bench.BUSY_SHARE: other processes above this share of the machine
NO_TIMING_RECORD = (
    "no timing-protocol record in this run (ctx.record_timing was not called; the note says why)"
)


@dataclass(frozen=True)
class Rule:
    """How a measured value decides a claim.

    kinds: ``at_least`` (value >= a), ``at_most`` (value <= a), ``between`` (a <= value <= b),
    ``within`` (|value - a| <= b, an absolute tolerance around a target).
    """

    kind: str
    a: float
    b: float | None = None

    def __post_init__(self):
        if self.kind not in ("at_least", "at_most", "between", "within"):
            raise ConfigError(f"unknown rule kind {self.kind!r}")
        if self.kind in ("between", "within") and self.b is None:
            raise ConfigError(f"rule {self.kind} needs two numbers")
        for x in (self.a, self.b):
            if x is not None and (not isinstance(x, int | float) or not math.isfinite(x)):
                raise ConfigError(f"rule {self.kind}: bounds must be finite numbers, not {x!r}")
        if self.kind == "between" and self.b < self.a:
            raise ConfigError(f"rule between: empty range [{self.a}, {self.b}]")
        if self.kind == "within" and self.b < 0:
            raise ConfigError(f"rule within: the tolerance must be >= 0, not {self.b}")

    def bounds(self) -> tuple[float, float]:
        """The accepted range [lo, hi] (infinite on an open side)."""
        if self.kind == "at_least":
            return self.a, math.inf
        if self.kind == "at_most":
            return -math.inf, self.a
        if self.kind == "between":
            return self.a, self.b
        return self.a - self.b, self.a + self.b

    def decide(self, value: float) -> bool:
        """True when the point ``value`` satisfies the rule; NaN never does."""
        if value is None or not math.isfinite(value):
            return False
        lo, hi = self.bounds()
        return lo <= value <= hi

    def judge(self, low: float, high: float) -> str:
        """Decide an interval: REPRODUCED inside the accepted range, NOT_REPRODUCED wholly
        outside it, INCONCLUSIVE when it straddles an edge (or is not finite)."""
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            return INCONCLUSIVE
        lo, hi = self.bounds()
        if lo <= low and high <= hi:
            return REPRODUCED
        if high < lo or low > hi:
            return NOT_REPRODUCED
        return INCONCLUSIVE

    def describe(self) -> str:
        """The rule in words, e.g. '>= 0.97'."""
        if self.kind == "at_least":
            return f">= {self.a:g}"
        if self.kind == "at_most":
            return f"<= {self.a:g}"
        if self.kind == "between":
            return f"in [{self.a:g}, {self.b:g}]"
        return f"within {self.b:g} of {self.a:g}"


def at_least(a: float) -> Rule:
    return Rule("at_least", a)


def at_most(a: float) -> Rule:
    return Rule("at_most", a)


def between(a: float, b: float) -> Rule:
    return Rule("between", a, b)


def within(target: float, tolerance: float) -> Rule:
    return Rule("within", target, tolerance)


@dataclass(frozen=True, kw_only=True)
class Claim:
    """One claim of a paper, as data (keyword arguments only).

    ``paper_value`` is the paper's number as the paper states it (text, with its unit in ``unit``);
    ``metric`` says exactly what we measure and in which unit; ``rule`` decides on our interval.
    ``profiles`` lists the profiles at which the claim is tested; ``scale_note`` says how our
    setting differs from the paper's.

    ``kind``: "paper" (a result the paper reports, measured here; the only kind counted in
    headlines), "check" (an invariant, identity or self-consistency test of our implementation) or
    "by-construction" (a value we set); ``kind_reason`` is required for the last two.
    ``timing``: a speed claim, decided by the timing protocol (``ctx.record_timing``).
    ``test_size``: the metric is an accuracy/error on a test set of this many examples, in units of
    ``test_scale`` (1.0: a fraction, 100.0: percent or pp); ``test_difference`` when it is the
    difference of two such accuracies (two arms on the same test set).
    ``tuned``: knobs the claim's setting depends on; each must have a tuning record in the run
    (``ctx.tune``), else the verdict of a paper claim is inconclusive.
    """

    id: str
    statement: str
    paper_value: str
    unit: str
    source: str
    confidence: str
    metric: str
    rule: Rule
    profiles: tuple[str, ...] = ("small", "paper")
    scale_note: str = ""
    kind: str = "paper"
    kind_reason: str = ""
    timing: bool = False
    test_size: int | None = None
    test_scale: float = 1.0
    test_difference: bool = False
    tuned: tuple[str, ...] = ()

    def __post_init__(self):
        name = f"claim {self.id!r}"
        if not isinstance(self.id, str) or not self.id.strip():
            raise ConfigError("a claim needs a non-empty id")
        if self.confidence not in CONFIDENCE:
            raise ConfigError(
                f"{name}: confidence must be one of {CONFIDENCE}, not {self.confidence!r}"
            )
        if not isinstance(self.rule, Rule):
            raise ConfigError(
                f"{name}: rule must be a Rule (at_least, at_most, between, within), not {self.rule!r}"
            )
        if self.kind not in KINDS:
            raise ConfigError(f"{name}: kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind != "paper" and not self.kind_reason.strip():
            raise ConfigError(
                f"{name}: kind {self.kind!r} needs a kind_reason saying why it is not a paper result"
            )
        if self.test_size is not None and (
            not isinstance(self.test_size, int)
            or isinstance(self.test_size, bool)
            or self.test_size < 1
        ):
            raise ConfigError(
                f"{name}: test_size must be a positive integer, not {self.test_size!r}"
            )
        if not (isinstance(self.test_scale, int | float) and self.test_scale > 0):
            raise ConfigError(
                f"{name}: test_scale must be > 0 (1.0 fraction, 100.0 percent), not {self.test_scale!r}"
            )
        if self.timing and self.test_size is not None:
            raise ConfigError(f"{name}: a timing claim cannot declare a test_size")
        if isinstance(self.profiles, str) or isinstance(self.tuned, str):
            raise ConfigError(f"{name}: profiles and tuned are tuples of names, not a string")
        object.__setattr__(self, "profiles", tuple(self.profiles))
        object.__setattr__(self, "tuned", tuple(self.tuned))


@dataclass(frozen=True)
class Decision:
    """A claim's verdict, why, and the interval it was decided on (None when there is none)."""

    verdict: str
    reason: str
    interval: stats.Interval | None

    @property
    def mean(self) -> float | None:
        return self.interval.mean if self.interval else None


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):  # a non-finite number as stored in JSON ("nan", "inf")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}"
    return f"{value:.3e}"


def _timing_decision(claim: Claim, record: dict) -> Decision:
    try:
        ratio, low, high = (float(record[k]) for k in ("ratio", "low", "high"))
    except (KeyError, TypeError, ValueError):
        return Decision(INCONCLUSIVE, "timing record lacks ratio/low/high", None)
    n = int(record.get("repeats") or 0)
    interval = stats.Interval(ratio, low, high, n, "bootstrap (timing)")
    if not all(math.isfinite(x) for x in (ratio, low, high)):
        return Decision(INCONCLUSIVE, "timing record is not finite", interval)
    share = record.get("other_cpu_share")
    # the flag from bench, or the reading itself: either one above the limit leaves it undecided
    if record.get("busy") or (_finite(share) and share > BUSY_SHARE):
        pct = f"{100 * share:.0f}%" if _finite(share) else "more than 25%"
        return Decision(
            BUSY, f"machine busy: other processes used {pct} of the CPU while timing", interval
        )
    verdict = claim.rule.judge(low, high)
    threads = record.get("threads")
    where = f"{n} interleaved repeats" + (f", {threads} threads" if threads else "")
    if verdict == INCONCLUSIVE:
        return Decision(verdict, f"ratio interval straddles the rule's edge ({where})", interval)
    return Decision(verdict, f"bootstrap interval of the ratio ({where})", interval)


def decide(
    claim: Claim,
    values: list[float] | None,
    profile: str,
    *,
    timing: dict | None = None,
    tuned: set[str] | frozenset[str] = frozenset(),
    missing_timing_reason: str = NO_TIMING_RECORD,
) -> Decision:
    """The verdict of ``claim`` at ``profile`` from its per-seed ``values``.

    ``timing``: the claim's ``bench.RatioMeasurement.as_dict()`` (timing claims only); ``tuned``:
    names of knobs with a tuning record in this run.
    """
    if profile not in claim.profiles:
        return Decision(NOT_RUN, f"declared for profiles {', '.join(claim.profiles)} only", None)
    missing = [k for k in claim.tuned if k not in tuned] if claim.kind == "paper" else []
    untuned = f"its setting depends on {', '.join(missing)}, not chosen by the tuning protocol"
    if claim.timing:
        if timing is not None:
            d = _timing_decision(claim, timing)
            if missing and d.verdict in (REPRODUCED, NOT_REPRODUCED):
                return Decision(INCONCLUSIVE, untuned, d.interval)
            return d
        if not values:
            return Decision(NOT_RUN, "no value recorded at this profile", None)
        mean = statistics.fmean(values) if all(_finite(v) for v in values) else math.nan
        return Decision(
            INCONCLUSIVE,
            missing_timing_reason,
            stats.Interval(mean, math.nan, math.nan, len(values), "none"),
        )
    if not values:
        return Decision(NOT_RUN, "no value recorded at this profile", None)
    n = len(values)
    if not all(_finite(v) for v in values):
        return Decision(
            INCONCLUSIVE,
            "a recorded value is not finite (NaN/inf)",
            stats.Interval(math.nan, math.nan, math.nan, n, "none"),
        )
    point = claim.kind != "paper" and n == 1
    if n >= 2:
        interval = stats.t_interval(values)
        if claim.test_size and not claim.test_difference:
            p = interval.mean / claim.test_scale
            if 0.0 <= p <= 1.0:
                # the seeds share one test set: fold its binomial error in (in quadrature)
                z = stats.z_quantile(0.975)
                hb = z * math.sqrt(p * (1 - p) / claim.test_size) * claim.test_scale
                ht = interval.high - interval.mean
                half = math.hypot(ht, hb)
                interval = stats.Interval(
                    interval.mean, interval.mean - half, interval.mean + half, n, "t+binomial"
                )
    elif claim.test_size:
        value = values[0]
        if claim.test_difference:
            half = stats.difference_halfwidth(claim.test_size) * claim.test_scale
            interval = stats.Interval(
                value, value - half, value + half, 1, "binomial (difference, p=0.5)"
            )
        else:
            p = value / claim.test_scale
            if not 0.0 <= p <= 1.0:
                return Decision(
                    INCONCLUSIVE,
                    f"value {value:g} is not a proportion of test_scale {claim.test_scale:g}",
                    stats.Interval(value, math.nan, math.nan, 1, "none"),
                )
            lo, hi = stats.binomial_interval(p, claim.test_size)
            interval = stats.Interval(
                value, lo * claim.test_scale, hi * claim.test_scale, 1, "binomial (wilson)"
            )
    elif point:
        interval = stats.Interval(values[0], values[0], values[0], 1, "point")
    else:
        ok = claim.rule.decide(values[0])
        return Decision(
            INCONCLUSIVE,
            f"one seed and no test-set interval: at best inconclusive (the single value "
            f"{'satisfies' if ok else 'violates'} the rule)",
            stats.Interval(values[0], math.nan, math.nan, 1, "none"),
        )
    if missing:
        return Decision(INCONCLUSIVE, untuned, interval)
    verdict = claim.rule.judge(interval.low, interval.high)
    if point:
        reason = "a deterministic check: decided on its value"
    elif verdict == INCONCLUSIVE:
        reason = "the interval straddles the rule's edge"
    else:
        reason = f"the whole 95% interval ({interval.method}) {'satisfies' if verdict == REPRODUCED else 'violates'} the rule"
    return Decision(verdict, reason, interval)


def verdict(claim: Claim, values: list[float] | None, profile: str) -> tuple[str, float | None]:
    """(verdict, mean) for a claim given its measured values at ``profile`` (see :func:`decide`)."""
    d = decide(claim, values, profile)
    return d.verdict, d.mean


# --------------------------------------------------------------------------- provenance


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(
    profile: str,
    seeds: list[int],
    data_sha256: dict[str, str],
    wall_seconds: float,
    packages: dict[str, str],
    source_paths: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Where a result came from: commit, dirty flag, time, versions, hardware, data, wall time.

    ``dirty`` says whether tracked files under ``source_paths`` (default: the whole repository)
    differ from the commit: the code that made the result, not unrelated work in progress.
    """
    import numpy
    import torch

    status = _git("status", "--porcelain", "--untracked-files=no", "--", *source_paths)
    gpu = None
    if torch.cuda.is_available():
        gpu = torch.cuda.get_device_name(0)
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(status) if status is not None else None,
        "dirty_scope": list(source_paths) or ["."],
        "time_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": profile,
        "seeds": seeds,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            **packages,
        },
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        # 1-minute load average when the run ended: timings from a busy machine read differently
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "gpu": gpu,
        "data_sha256": data_sha256,
        "wall_seconds": round(wall_seconds, 1),
    }


# --------------------------------------------------------------------------- the document


def _check_tuning(package: str, records: list[dict]) -> None:
    from .tuning import validate_record

    for rec in records:
        validate_record(rec, where=package)


def build_results(
    package: str,
    title: str,
    claims: list[Claim],
    measurements: dict[str, list[float]],
    notes: dict[str, str],
    profile: str,
    prov: dict[str, Any],
    figures: list[str],
    details: dict[str, Any],
    *,
    timings: dict[str, dict] | None = None,
    tuning: list[dict] | None = None,
    inputs: dict[str, str] | None = None,
    missing_timing_reason: str = NO_TIMING_RECORD,
) -> dict:
    """The results.json document (a plain dict).

    ``timings``: claim id -> ``bench.RatioMeasurement.as_dict()``; ``tuning``: TuningRecord dicts;
    ``inputs``: path -> sha256 of files the run read.
    """
    ids = {c.id for c in claims}
    unknown = set(measurements) - ids
    if unknown:
        raise ConfigError(f"{package}: measurements for undeclared claims {sorted(unknown)}")
    timings = dict(timings or {})
    unknown = set(timings) - {c.id for c in claims if c.timing}
    if unknown:
        raise ConfigError(
            f"{package}: timing records for claims not declared timing=True: {sorted(unknown)}"
        )
    tuning = [dict(r) for r in (tuning or [])]
    _check_tuning(package, tuning)
    tuned = {r["name"] for r in tuning}
    rows = []
    for claim in claims:
        values = [float(v) for v in (measurements.get(claim.id) or [])]
        d = decide(
            claim,
            values,
            profile,
            timing=timings.get(claim.id),
            tuned=tuned,
            missing_timing_reason=missing_timing_reason,
        )
        row = asdict(claim)
        row["rule"] = {
            "kind": claim.rule.kind,
            "a": claim.rule.a,
            "b": claim.rule.b,
            "text": claim.rule.describe(),
        }
        row["profiles"] = list(claim.profiles)
        row["tuned"] = list(claim.tuned)
        iv = d.interval
        row.update(
            values=values,
            n=len(values) if not (claim.timing and claim.id in timings) else (iv.n if iv else 0),
            mean=iv.mean if iv else None,
            low=iv.low if iv else None,
            high=iv.high if iv else None,
            interval=iv.method if iv else None,
            spread=statistics.stdev(values)
            if len(values) > 1 and all(map(_finite, values))
            else None,
            verdict=d.verdict,
            reason=d.reason,
            note=notes.get(claim.id, ""),
        )
        if claim.id in timings:
            row["timing_record"] = timings[claim.id]
        rows.append(row)
    return {
        "schema": 2,
        "package": package,
        "title": title,
        "profile": profile,
        "claims": rows,
        "provenance": prov,
        "figures": figures,
        "details": details,
        "tuning": tuning,
        "inputs": dict(inputs or {}),
    }


def summarize(doc: dict) -> dict:
    """Headline counts of a results document: paper claims by verdict, checks passed."""
    paper = [r for r in doc["claims"] if r.get("kind", "paper") == "paper"]
    checks = [r for r in doc["claims"] if r.get("kind", "paper") != "paper"]
    tested = [r for r in paper if r["verdict"] != NOT_RUN]
    checked = [r for r in checks if r["verdict"] != NOT_RUN]
    prov = doc.get("provenance", {})
    return {
        "profile": doc.get("profile") or prov.get("profile"),
        "time_utc": prov.get("time_utc"),
        "commit": prov.get("commit"),
        "seeds": prov.get("seeds"),
        "paper_declared": len(paper),
        "paper_tested": len(tested),
        "reproduced": sum(r["verdict"] == REPRODUCED for r in tested),
        "not_reproduced": sum(r["verdict"] == NOT_REPRODUCED for r in tested),
        "inconclusive": sum(r["verdict"] in (INCONCLUSIVE, BUSY) for r in tested),
        "checks_declared": len(checks),
        "checks_tested": len(checked),
        "checks_passed": sum(r["verdict"] == REPRODUCED for r in checked),
        "claims": {
            r["id"]: {k: r.get(k) for k in ("mean", "low", "high", "n", "verdict")}
            for r in doc["claims"]
        },
    }


# --------------------------------------------------------------------------- rendering


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _interval_text(r: dict) -> str:
    lo, hi = r.get("low"), r.get("high")
    if lo is None or hi is None or not (_finite(lo) and _finite(hi)):
        return "—"
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def _interval_with_method(r: dict) -> str:
    text = _interval_text(r)
    if text != "—" and r.get("interval") not in (None, "none"):
        text += f" ({r['interval']})"
    return text


def headline(doc: dict) -> str:
    """One line: paper claims by verdict, checks passed."""
    s = summarize(doc)
    return (
        f"Paper claims: {s['reproduced']} reproduced, {s['not_reproduced']} not reproduced, "
        f"{s['inconclusive']} inconclusive of {s['paper_tested']} tested ({s['paper_declared']} declared); "
        f"checks passed: {s['checks_passed']} of {s['checks_tested']}."
    )


def run_header(doc: dict) -> str:
    """Profile, seeds, commit, date, wall time, machine of one results document."""
    prov = doc["provenance"]
    gpu = f", GPU {prov['gpu']}" if prov.get("gpu") else ""
    return (
        f"Profile `{doc.get('profile') or prov['profile']}`, seeds {prov['seeds']}, commit "
        f"`{str(prov['commit'])[:12]}`{' (dirty)' if prov.get('dirty') else ''}, {prov['time_utc']}, "
        f"{prov['wall_seconds']} s on {prov['cpu']} ({prov['threads']} threads){gpu}."
    )


def render_tables(doc: dict, figure_prefix: str = "") -> list[str]:
    """The paper-claims table and the checks table of one results document (markdown lines)."""
    paper = [r for r in doc["claims"] if r.get("kind", "paper") == "paper"]
    checks = [r for r in doc["claims"] if r.get("kind", "paper") != "paper"]
    lines = [
        "| id | claim | source | confidence | paper | ours: mean | 95% interval | n | rule | verdict | why |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in paper:
        lines.append(
            f"| {r['id']} | {_cell(r['statement'])} | {_cell(r['source'])} | {r['confidence']} | "
            f"{_cell((r['paper_value'] + ' ' + r['unit']).strip())} | {_fmt(r['mean'])} ({_cell(r['metric'])}) | "
            f"{_interval_with_method(r)} | "
            f"{r.get('n', len(r.get('values', [])))} | {r['rule']['text']} | **{r['verdict']}** | {_cell(r.get('reason', ''))} |"
        )
    if checks:
        lines += [
            "",
            "Checks and by-construction values (not counted in the headline):",
            "",
            "| id | kind | why not a paper result | what | ours: mean | 95% interval | n | rule | checks passed |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in checks:
            passed = {REPRODUCED: "passed", NOT_REPRODUCED: "failed"}.get(
                r["verdict"], r["verdict"]
            )
            lines.append(
                f"| {r['id']} | {r['kind']} | {_cell(r['kind_reason'])} | {_cell(r['metric'])} | "
                f"{_fmt(r['mean'])} | {_interval_text(r)} | {r.get('n', len(r.get('values', [])))} | "
                f"{r['rule']['text']} | **{passed}** |"
            )
    return lines


def render_notes(doc: dict) -> list[str]:
    rows = [r for r in doc["claims"] if r.get("note") or r.get("scale_note")]
    if not rows:
        return []
    lines = ["", "Notes:", ""]
    for r in rows:
        lines.append(
            f"- **{r['id']}**: {' '.join(t for t in (r.get('scale_note', ''), r.get('note', '')) if t)}"
        )
    return lines


def render_tuning(doc: dict) -> list[str]:
    if not doc.get("tuning"):
        return []
    lines = ["", "Tuning (validation split, tuning seeds disjoint from the reporting seeds):", ""]
    for t in doc["tuning"]:
        means = ", ".join(
            f"{c}: {_fmt(m)}" for c, m in zip(t["candidates"], t["means"], strict=False)
        )
        lines.append(
            f"- **{t['name']}** on `{t['split']}`, seeds {t['seeds']}, objective {t['objective']}: {means}; chose {t['choice']}"
        )
    return lines


def render_package_readme(doc: dict) -> str:
    """paper_results/<pkg>/<profile>/README.md: header, both tables, notes, tuning, figures."""
    lines = [
        f"# {doc['package']}: {doc['title']}",
        "",
        run_header(doc),
        headline(doc) + " Generated from results.json; do not edit by hand.",
        "",
        *render_tables(doc),
        *render_notes(doc),
        *render_tuning(doc),
    ]
    if doc["figures"]:
        lines += ["", "## Figures", ""]
        lines += [f"![{f}]({f})" for f in doc["figures"]]
    return "\n".join(lines) + "\n"


def profile_docs(pkg_dir: Path) -> dict[str, dict]:
    """profile -> results document for every ``<pkg_dir>/<profile>/results.json``, in profile order."""
    found = {}
    for path in Path(pkg_dir).glob("*/results.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except ValueError:
            continue
    order = {p: i for i, p in enumerate(PROFILE_ORDER)}
    return {k: found[k] for k in sorted(found, key=lambda p: (order.get(p, len(order)), p))}


def render_claims_block(docs: dict[str, dict], link_prefix: str = "") -> str:
    """The claims tables of every profile (what the package overview and package README show)."""
    lines: list[str] = []
    for profile, doc in docs.items():
        lines += [
            f"### Profile `{profile}`",
            "",
            run_header(doc),
            headline(doc),
            f"Details: [{link_prefix}{profile}/README.md]({link_prefix}{profile}/README.md).",
            "",
            *render_tables(doc),
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def render_overview(pkg_dir: Path) -> str:
    """paper_results/<pkg>/README.md: every profile's tables."""
    docs = profile_docs(pkg_dir)
    first = next(iter(docs.values()))
    lines = [
        f"# {first['package']}: {first['title']}",
        "",
        "Pinned results per profile, generated from each profile's results.json; do not edit by hand.",
        "",
        render_claims_block(docs).rstrip(),
    ]
    for profile, doc in docs.items():
        if doc["figures"]:
            lines += ["", f"## Figures (`{profile}`)", ""]
            lines += [f"![{f}]({profile}/{f})" for f in doc["figures"]]
    return "\n".join(lines) + "\n"


def render_index(root: Path) -> str:
    """paper_results/README.md: one row per package and profile; only paper claims in the counts."""
    lines = [
        "# Results",
        "",
        "Pinned, citable results of `nox -s reproduce`, per package and profile. Only claims of kind "
        "`paper` are counted; checks and by-construction values are counted separately. A verdict is "
        "*reproduced* / *not reproduced* only when the whole 95% interval is on one side of the rule.",
        "",
        "| package | profile | reproduced | not reproduced | inconclusive | paper claims tested / declared "
        "| checks passed | date (UTC) | commit |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    folders = (p for p in Path(root).iterdir() if p.is_dir() and p.name[0] not in "._")
    for pkg_dir in sorted(folders):
        for profile, doc in profile_docs(pkg_dir).items():
            s = summarize(doc)
            lines.append(
                f"| [{doc['package']}]({pkg_dir.name}/README.md) | [{profile}]({pkg_dir.name}/{profile}/README.md) "
                f"| {s['reproduced']} | {s['not_reproduced']} | {s['inconclusive']} | "
                f"{s['paper_tested']} / {s['paper_declared']} | {s['checks_passed']} / {s['checks_tested']} | "
                f"{s['time_utc']} | `{str(s['commit'])[:12]}` |"
            )
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, doc: dict) -> Path:
    """Write one profile's results: ``out_dir`` is ``<root>/<pkg>/<profile>/``.

    Writes results.json (the replaced document's summary appended to history.json first, never
    dropped), README.md there, the package overview ``<root>/<pkg>/README.md`` and the index
    ``<root>/README.md``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    current = out_dir / "results.json"
    if current.exists():
        history_path = out_dir / "history.json"
        history = json.loads(history_path.read_text()) if history_path.exists() else []
        try:
            history.append(summarize(json.loads(current.read_text())))
        except (ValueError, KeyError) as exc:
            raise ConfigError(
                f"{current} is not a results document ({exc}); move it away and rerun"
            ) from exc
        write_json(history_path, history)
    write_json(current, doc)
    write_text(out_dir / "README.md", render_package_readme(doc))
    write_text(out_dir.parent / "README.md", render_overview(out_dir.parent))
    write_text(out_dir.parent.parent / "README.md", render_index(out_dir.parent.parent))
    return current


def claims_table(doc: dict) -> str:
    """A plain-text table for the terminal: id, kind, paper, ours (mean [interval] n), rule, verdict."""
    rows = [("claim", "kind", "paper", "ours", "rule", "verdict")]
    for r in doc["claims"]:
        ours = _fmt(r.get("mean"))
        if r.get("mean") is not None:
            ours += f" {_interval_text(r)} n={r.get('n', len(r.get('values', [])))}"
        rows.append(
            (
                f"{doc['package']}:{r['id']}",
                r.get("kind", "paper"),
                f"{r['paper_value']} {r['unit']}".strip(),
                ours,
                r["rule"]["text"],
                r["verdict"],
            )
        )
    widths = [min(max(len(row[i]) for row in rows), 40) for i in range(6)]
    return "\n".join(
        "  ".join(cell[:40].ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@dataclass
class Figure:
    """A saved figure: PNG plus the JSON it was drawn from (file names relative to out_dir)."""

    png: str
    data: str
    extra: list[str] = field(default_factory=list)


def save_figure(out_dir: Path, name: str, fig, data: Any) -> Figure:
    """Save a matplotlib figure as ``<name>.png`` and its data as ``<name>.json`` in ``out_dir``."""
    import io

    from .io import write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    write_bytes(Path(out_dir) / f"{name}.png", buf.getvalue())
    write_json(Path(out_dir) / f"{name}.json", data)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return Figure(f"{name}.png", f"{name}.json")
