"""wire="auto": the byte formula it minimizes, what it picks, and the defaults (one place: wire.py)
as the API, the claims and the README state them."""

import inspect
import re
from pathlib import Path

import pytest

from dnnrepro.core.errors import ConfigError
from dnnrepro.terngrad import (
    DEFAULT_CODEC,
    DEFAULT_WIRE,
    EmulatorConfig,
    TernGradState,
    collective_bytes,
    network_bytes,
    register,
    resolve_wire,
    wire_bytes_per_element,
)
from dnnrepro.terngrad.claims import CLAIMS, default_wire_label
from dnnrepro.terngrad.packing import TRITS_PER_BYTE, field_bits, fields_per_word
from dnnrepro.terngrad.wire import EXACT_WIRES, WIRES, check_wire

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("codec", ["2bit", "base3"])
@pytest.mark.parametrize("workers", [2, 3, 4, 5, 8, 16, 33, 64, 128])
def test_formula_equals_the_counted_bytes_per_element(codec, workers):
    # at n a multiple of N * T * F every shard, byte and word is full: the limit is exact
    n = workers * TRITS_PER_BYTE[codec] * fields_per_word(field_bits(workers)) * 3
    for wire in WIRES:
        if wire == "int8" and workers > 127:
            continue
        handed = collective_bytes(wire, codec, n, workers, layers=1)
        handed.pop("scaler_max_allreduce")  # per layer, not per element
        got = network_bytes(handed, workers) / n
        assert got == pytest.approx(wire_bytes_per_element(wire, codec, workers), rel=1e-12)


@pytest.mark.parametrize("codec", ["2bit", "base3"])
def test_auto_picks_the_exact_wire_with_the_fewest_bytes(codec):
    n = 10**7
    for workers in range(2, 200):
        picked = resolve_wire("auto", codec, workers)
        usable = [w for w in EXACT_WIRES if not (w == "int8" and workers > 127)]
        sent = {
            w: network_bytes(collective_bytes(w, codec, n, workers, layers=8), workers)
            for w in usable
        }
        assert sent[picked] == min(sent.values()), (workers, picked, sent)
    # the case: at N = 2 the a2a wire hands over more bytes than allgather
    assert resolve_wire("auto", codec, 2) == "allgather"
    assert resolve_wire("auto", codec, 4) == "a2a"
    assert resolve_wire("auto", codec, 4, scaler_sharing=False) == "allgather"
    assert resolve_wire("fields", codec, 4) == "fields"  # an explicit wire is kept


def test_auto_is_the_default_everywhere_and_collective_bytes_resolves_it():
    assert DEFAULT_WIRE == "auto"
    assert TernGradState().wire == DEFAULT_WIRE and TernGradState().codec == DEFAULT_CODEC
    assert EmulatorConfig().wire == DEFAULT_WIRE and EmulatorConfig().codec == DEFAULT_CODEC
    params = inspect.signature(register).parameters
    assert params["wire"].default == DEFAULT_WIRE and params["codec"].default == DEFAULT_CODEC
    for workers in (2, 4, 32):
        resolved = resolve_wire(DEFAULT_WIRE, DEFAULT_CODEC, workers)
        assert collective_bytes("auto", DEFAULT_CODEC, 1000, workers, 3) == collective_bytes(
            resolved, DEFAULT_CODEC, 1000, workers, 3
        )
        assert TernGradState().resolved_wire(workers) == resolved


def test_a_wire_that_cannot_carry_n_workers_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"wire='int8' cannot carry 200 workers.*set wire="):
        check_wire("int8", "2bit", 200, True)
    with pytest.raises(ConfigError, match="wire='int8' cannot carry 128 workers"):
        TernGradState(wire="int8").resolved_wire(128)
    assert check_wire("auto", "2bit", 200, True) == "a2a"  # auto never picks a wire that wraps
    with pytest.raises(ConfigError, match="scaler_sharing=True, or wire='allgather'"):
        TernGradState(wire="a2a", scaler_sharing=False).resolved_wire(4)
    with pytest.raises(ConfigError, match="set wire= to one of auto"):
        TernGradState(wire="ring")
    with pytest.raises(ConfigError, match="set codec= to one of"):
        TernGradState(codec="3bit")


def test_readme_and_claims_state_the_defaults_of_the_code():
    text = README.read_text()
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r"^\| `(\w+)\(.*$", text, re.M)
        if m.group(1) in ("TernGradState", "register")
    }
    assert set(rows) == {"TernGradState", "register"}
    for row in rows.values():
        assert f'wire="{DEFAULT_WIRE}"' in row and f'codec="{DEFAULT_CODEC}"' in row, row
    # the wire-formats table marks exactly one row as the default: the default wire
    defaults = re.findall(r"^\| `([\w-]+)` \(default\)", text, re.M)
    assert defaults == [DEFAULT_WIRE]
    # the claims name the default wire from the constants (the README block renders the claims)
    stated = [c for c in CLAIMS if "default" in c.statement.lower()]
    assert stated, "no claim states the default wire"
    for claim in stated:
        n = int(claim.statement.rsplit("N = ", 1)[1])
        assert default_wire_label(n) in claim.statement and default_wire_label(n) in claim.metric
        assert DEFAULT_CODEC in claim.statement
