import json
import math

import pytest

from dnnrepro.core import results
from dnnrepro.core.errors import ConfigError
from dnnrepro.core.results import Claim


def _claim(cid="acc", rule=None, profiles=("small", "paper")):
    return Claim(
        cid,
        "accuracy stays high",
        "99.1",
        "%",
        "Table 1",
        "verified",
        "test accuracy (fraction)",
        rule or results.at_least(0.9),
        profiles,
    )


def test_rules_decide_and_describe():
    assert results.at_least(0.9).decide(0.9) and not results.at_least(0.9).decide(0.89)
    assert results.at_most(2).decide(1.5) and not results.at_most(2).decide(2.1)
    assert results.between(1, 2).decide(1.5) and not results.between(1, 2).decide(2.5)
    assert results.within(10, 1).decide(9.2) and not results.within(10, 1).decide(8.9)
    assert not results.at_least(0).decide(math.nan)
    assert results.within(10, 1).describe() == "within 1 of 10"
    with pytest.raises(ConfigError):
        results.Rule("roughly", 1)
    with pytest.raises(ConfigError):
        Claim("x", "s", "1", "", "T1", "certain", "m", results.at_least(1))


def test_verdicts_use_the_mean_and_the_profile():
    c = _claim()
    assert results.verdict(c, [0.95, 0.87], "small") == (results.REPRODUCED, pytest.approx(0.91))
    assert results.verdict(c, [0.8], "small")[0] == results.NOT_REPRODUCED
    assert results.verdict(c, [0.95], "smoke")[0] == results.NOT_RUN
    assert results.verdict(_claim(profiles=("paper",)), [0.95], "small")[0] == results.NOT_RUN
    assert results.verdict(c, None, "small")[0] == results.NOT_RUN


def test_write_results_renders_json_readme_and_index(tmp_path):
    claims = [_claim("a"), _claim("b", results.at_most(0.5)), _claim("c", profiles=("paper",))]
    prov = results.provenance("small", [0, 1], {"x.npz": "00"}, 12.3, {"dnnrepro-core": "0.1.0"})
    doc = results.build_results(
        "demo",
        "A demo paper",
        claims,
        {"a": [0.95, 0.97], "b": [0.7]},
        {"b": "the penalty was too weak"},
        "small",
        prov,
        [],
        {},
    )
    path = results.write_results(tmp_path / "demo", doc)
    loaded = json.loads(path.read_text())
    rows = {r["id"]: r for r in loaded["claims"]}
    assert rows["a"]["verdict"] == "reproduced" and rows["a"]["mean"] == pytest.approx(0.96)
    assert rows["a"]["spread"] == pytest.approx(0.01414, rel=1e-3)
    assert rows["b"]["verdict"] == "not reproduced" and rows["b"]["values"] == [0.7]
    assert rows["c"]["verdict"] == "not run at this profile"
    for key in (
        "commit",
        "dirty",
        "time_utc",
        "profile",
        "seeds",
        "versions",
        "cpu",
        "threads",
        "gpu",
        "data_sha256",
        "wall_seconds",
    ):
        assert key in loaded["provenance"]
    readme = (tmp_path / "demo" / "README.md").read_text()
    assert "Reproduced 1 of 2 claims" in readme and "the penalty was too weak" in readme
    index = (tmp_path / "README.md").read_text()
    assert "[demo](demo/README.md) | 1 / 2 | 3 | small" in index
    table = results.claims_table(loaded)
    assert "demo:a" in table and "not reproduced" in table


def test_measurements_for_undeclared_claims_are_refused():
    with pytest.raises(ConfigError, match="undeclared"):
        results.build_results("demo", "t", [_claim()], {"zzz": [1.0]}, {}, "small", {}, [], {})


def test_save_figure_writes_png_and_data(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    saved = results.save_figure(tmp_path, "curve", fig, {"x": [0, 1], "y": [1, 0]})
    assert (tmp_path / saved.png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / saved.data).read_text()) == {"x": [0, 1], "y": [1, 0]}
