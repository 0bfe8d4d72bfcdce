import json
import math

import pytest

from dnnrepro.core import results, stats, tuning
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.results import Claim


def _claim(cid="acc", rule=None, profiles=("small", "paper"), **kw):
    return Claim(
        id=cid,
        statement="accuracy stays high",
        paper_value="99.1",
        unit="%",
        source="Table 1",
        confidence="verified",
        metric="test accuracy (fraction)",
        rule=rule or results.at_least(0.9),
        profiles=profiles,
        **kw,
    )


def _timing(ratio=3.0, low=2.5, high=3.5, share=0.02, busy=False):
    return {
        "ratio": ratio,
        "low": low,
        "high": high,
        "candidate_s": 1.0,
        "baseline_s": ratio,
        "repeats": 9,
        "threads": 2,
        "other_cpu_share": share,
        "busy": busy,
    }


def test_rules_decide_judge_and_describe():
    assert results.at_least(0.9).decide(0.9) and not results.at_least(0.9).decide(0.89)
    assert results.at_most(2).decide(1.5) and not results.at_most(2).decide(2.1)
    assert results.between(1, 2).decide(1.5) and not results.between(1, 2).decide(2.5)
    assert results.within(10, 1).decide(9.2) and not results.within(10, 1).decide(8.9)
    assert not results.at_least(0).decide(math.nan)
    assert results.within(10, 1).describe() == "within 1 of 10"
    r = results.between(1, 2)
    assert r.judge(1.1, 1.9) == results.REPRODUCED
    assert r.judge(2.1, 3) == results.NOT_REPRODUCED and r.judge(-1, 0.5) == results.NOT_REPRODUCED
    assert r.judge(0.5, 1.5) == results.INCONCLUSIVE and r.judge(0.5, 2.5) == results.INCONCLUSIVE
    assert results.at_least(0).judge(math.nan, 1) == results.INCONCLUSIVE
    for bad in (("roughly", 1), ("at_least", math.nan), ("between", 2, 1), ("within", 1, -1)):
        with pytest.raises(ConfigError):
            results.Rule(*bad)


def test_claims_are_keyword_only_and_validated():
    fields = dict(id="x", statement="s", paper_value="1", unit="", source="T1")
    fields.update(confidence="verified", metric="m", rule=results.at_least(1))
    with pytest.raises(TypeError):
        Claim(*fields.values())
    with pytest.raises(ConfigError, match="'x'.*confidence"):
        Claim(**{**fields, "confidence": "certain"})
    with pytest.raises(ConfigError, match="'x'.*rule"):
        Claim(**{**fields, "rule": None})
    with pytest.raises(ConfigError, match="'k'.*kind"):
        _claim("k", kind="invariant")
    with pytest.raises(ConfigError, match="'k'.*kind_reason"):
        _claim("k", kind="check")
    with pytest.raises(ConfigError, match="test_size"):
        _claim("t", test_size=0)
    assert _claim("c", kind="check", kind_reason="an identity").kind == "check"


def test_t_interval_verdicts_and_a_straddling_mean_is_inconclusive():
    c = _claim()
    d = results.decide(c, [0.95, 0.96, 0.97], "small")
    assert d.verdict == results.REPRODUCED and d.interval.method == "t"
    assert results.decide(c, [0.80, 0.81, 0.82], "small").verdict == results.NOT_REPRODUCED
    # the mean (0.55) passes ">= 0.5" but the seeds' interval reaches far below it
    poison = results.decide(_claim(rule=results.at_least(0.5)), [6.69, -2.51, -2.53], "small")
    assert poison.mean == pytest.approx(0.55) and results.at_least(0.5).decide(poison.mean)
    assert poison.verdict == results.INCONCLUSIVE and "straddles" in poison.reason
    iv = stats.t_interval([6.69, -2.51, -2.53])
    assert (poison.interval.low, poison.interval.high) == (iv.low, iv.high)


def test_one_seed_needs_a_test_set_interval():
    c = _claim()
    d = results.decide(c, [0.99], "small")
    assert d.verdict == results.INCONCLUSIVE and "at best inconclusive" in d.reason
    sized = _claim(test_size=1000)
    d = results.decide(sized, [0.99], "small")
    assert d.verdict == results.REPRODUCED and d.interval.method == "binomial (wilson)"
    lo, hi = stats.binomial_interval(0.99, 1000)
    assert (d.interval.low, d.interval.high) == (pytest.approx(lo), pytest.approx(hi))
    assert results.decide(sized, [0.905], "small").verdict == results.INCONCLUSIVE
    pct = _claim(rule=results.at_least(90.0), test_size=1000, test_scale=100.0)
    assert results.decide(pct, [99.0], "small").interval.high == pytest.approx(100 * hi)
    diff = _claim(
        rule=results.at_least(-1.0), test_size=1000, test_scale=100.0, test_difference=True
    )
    d = results.decide(diff, [-0.2], "small")
    assert d.verdict == results.INCONCLUSIVE and d.interval.method.startswith(
        "binomial (difference"
    )
    assert results.decide(diff, [10.0], "small").verdict == results.REPRODUCED
    # a check with one deterministic value is decided on it; a paper claim never is
    chk = _claim(kind="check", kind_reason="identity")
    assert results.decide(chk, [0.95], "small").verdict == results.REPRODUCED


def test_multi_seed_proportions_fold_in_the_test_set_error():
    vals = [0.95, 0.951, 0.949]
    plain = results.decide(_claim(), vals, "small").interval
    folded = results.decide(_claim(test_size=1000), vals, "small").interval
    assert folded.method == "t+binomial" and folded.low < plain.low and folded.high > plain.high


def test_nan_empty_and_profile_are_never_reproduced():
    c = _claim()
    assert results.decide(c, [0.95], "smoke").verdict == results.NOT_RUN
    assert results.decide(_claim(profiles=("paper",)), [0.95], "small").verdict == results.NOT_RUN
    assert results.decide(c, None, "small").verdict == results.NOT_RUN
    assert results.decide(c, [], "small").verdict == results.NOT_RUN
    d = results.decide(c, [0.95, math.nan], "small")
    assert d.verdict == results.INCONCLUSIVE and "not finite" in d.reason
    assert results.verdict(c, [0.95, 0.951], "small")[0] == results.REPRODUCED


def test_timing_claims_use_the_ratio_interval_and_the_busy_guard():
    c = _claim("speed", rule=results.at_least(2.0), timing=True)
    assert results.decide(c, [3.0], "small", timing=_timing()).verdict == results.REPRODUCED
    assert (
        results.decide(c, [3.0], "small", timing=_timing(1.5, 1.2, 1.8)).verdict
        == results.NOT_REPRODUCED
    )
    assert (
        results.decide(c, [3.0], "small", timing=_timing(2.2, 1.8, 2.6)).verdict
        == results.INCONCLUSIVE
    )
    # a synthetic load reading: other processes used 60% of the machine while timing
    busy = results.decide(c, [3.0], "small", timing=_timing(share=0.6, busy=True))
    assert busy.verdict == results.BUSY == "inconclusive (machine busy)" and "60%" in busy.reason
    # the reading alone (a record whose flag was not set) is enough
    assert results.decide(c, [3.0], "small", timing=_timing(share=0.3)).verdict == results.BUSY
    assert results.decide(c, [3.0], "small", timing=_timing(share=0.2)).verdict == "reproduced"
    none = results.decide(c, [3.0, 3.1], "small")
    assert none.verdict == results.INCONCLUSIVE and "timing-protocol" in none.reason


def test_a_bench_ratio_measurement_decides_a_timing_claim():
    bench = pytest.importorskip("dnnrepro.core.bench")
    if not hasattr(bench, "RatioMeasurement"):
        pytest.skip("bench.RatioMeasurement not available")
    c = _claim("speed", rule=results.at_least(2.0), timing=True)
    m = bench.RatioMeasurement.from_dict(_timing(share=0.6, busy=True))
    assert results.decide(c, [3.0], "small", timing=m.as_dict()).verdict == results.BUSY
    m = bench.RatioMeasurement.from_dict(_timing())
    assert results.decide(c, [3.0], "small", timing=m.as_dict()).verdict == results.REPRODUCED


def test_tuned_knobs_need_a_tuning_record():
    c = _claim(tuned=("lambda",))
    d = results.decide(c, [0.95, 0.96, 0.97], "small")
    assert d.verdict == results.INCONCLUSIVE and "lambda" in d.reason
    assert results.decide(c, [0.95, 0.96, 0.97], "small", tuned={"lambda"}).verdict == "reproduced"
    speed = _claim("speed", rule=results.at_least(2.0), timing=True, tuned=("lambda",))
    assert results.decide(speed, [3.0], "small", timing=_timing()).verdict == results.INCONCLUSIVE
    ok = results.decide(speed, [3.0], "small", timing=_timing(), tuned={"lambda"})
    assert ok.verdict == results.REPRODUCED


def _doc(claims, measurements, **kw):
    prov = results.provenance("small", [0, 1], {"x.npz": "00"}, 12.3, {"dnnrepro-core": "0.2.0"})
    return results.build_results(
        "demo", "A demo paper", claims, measurements, {"b": "the penalty was too weak"}, "small",
        prov, [], {}, **kw,
    )  # fmt: skip


def test_write_results_renders_profile_overview_index_and_history(tmp_path):
    claims = [
        _claim("a"),
        _claim("b", results.at_most(0.5)),
        _claim("c", profiles=("paper",)),
        _claim("chk", kind="check", kind_reason="an identity of our code"),
        _claim("speed", results.at_least(2.0), timing=True),
    ]
    rec = tuning.tune("lam", [1, 2], lambda c, s, sp: c, seeds=[1000], reporting_seeds=[0, 1])
    doc = _doc(
        claims,
        {"a": [0.95, 0.96, 0.97], "b": [0.7, 0.71], "chk": [0.95], "speed": [3.0]},
        timings={"speed": _timing()},
        tuning=[rec.as_dict()],
        inputs={"net.json": "ab"},
    )
    out = tmp_path / "demo" / "small"
    path = results.write_results(out, doc)
    loaded = json.loads(path.read_text())
    rows = {r["id"]: r for r in loaded["claims"]}
    assert rows["a"]["verdict"] == "reproduced" and rows["a"]["mean"] == pytest.approx(0.96)
    assert rows["a"]["n"] == 3 and rows["a"]["low"] < 0.95 and rows["a"]["interval"] == "t"
    assert rows["b"]["verdict"] == "not reproduced" and rows["b"]["values"] == [0.7, 0.71]
    assert rows["c"]["verdict"] == "not run at this profile"
    assert rows["chk"]["kind"] == "check" and rows["speed"]["timing_record"]["ratio"] == 3.0
    assert loaded["tuning"][0]["choice"] == 2 and loaded["inputs"] == {"net.json": "ab"}
    for key in (
        "commit",
        "dirty",
        "time_utc",
        "profile",
        "seeds",
        "cpu",
        "threads",
        "wall_seconds",
    ):
        assert key in loaded["provenance"]
    s = results.summarize(loaded)
    assert (s["reproduced"], s["not_reproduced"], s["inconclusive"], s["paper_tested"]) == (
        2,
        1,
        0,
        3,
    )
    assert (s["checks_passed"], s["checks_tested"]) == (1, 1)
    readme = (out / "README.md").read_text()
    assert "Paper claims: 2 reproduced, 1 not reproduced, 0 inconclusive of 3 tested" in readme
    assert "Checks and by-construction" in readme and "an identity of our code" in readme
    assert "the penalty was too weak" in readme and "**lam**" in readme
    overview = (tmp_path / "demo" / "README.md").read_text()
    assert "### Profile `small`" in overview
    index = (tmp_path / "README.md").read_text()
    assert (
        "| [demo](demo/README.md) | [small](demo/small/README.md) | 2 | 1 | 0 | 3 / 4 | 1 / 1 |"
        in index
    )
    assert not (out / "history.json").exists()
    # a second run: the first one's summary goes to history.json, never dropped
    results.write_results(out, _doc(claims, {"a": [0.5, 0.51]}))
    results.write_results(out, _doc(claims, {"a": [0.6, 0.61]}))
    history = json.loads((out / "history.json").read_text())
    assert [h["claims"]["a"]["verdict"] for h in history] == ["reproduced", "not reproduced"]
    # a second profile shows up in the overview and the index
    results.write_results(tmp_path / "demo" / "paper", _doc(claims, {"c": [0.99, 0.98]}))
    overview = (tmp_path / "demo" / "README.md").read_text()
    assert overview.index("`small`") < overview.index("`paper`")
    assert "[paper](demo/paper/README.md)" in (tmp_path / "README.md").read_text()
    table = results.claims_table(loaded)
    assert "demo:a" in table and "not reproduced" in table and "check" in table


def test_build_results_refuses_bad_input():
    with pytest.raises(ConfigError, match="undeclared"):
        _doc([_claim()], {"zzz": [1.0]})
    with pytest.raises(ConfigError, match="timing"):
        _doc([_claim()], {}, timings={"acc": _timing()})
    rec = tuning.tune("lam", [1], lambda c, s, sp: c, seeds=[1000], reporting_seeds=[0]).as_dict()
    with pytest.raises(ConfigError, match="test split"):
        _doc([_claim()], {}, tuning=[{**rec, "split": "test"}])


def test_save_figure_writes_png_and_data(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    saved = results.save_figure(tmp_path, "curve", fig, {"x": [0, 1], "y": [1, 0]})
    assert (tmp_path / saved.png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / saved.data).read_text()) == {"x": [0, 1], "y": [1, 0]}
