"""Seeded fuzzing of the checkpoint loader: mutated and truncated safetensors files, mutated
sidecar bytes and sidecars whose fields have the wrong types. Every outcome must be a correct
load or IntegrityError: never another exception, never a hang (an alarm bounds each loop)."""

import json
import random
import signal

import pytest
import torch

from dnnrepro.core import checkpoint
from dnnrepro.core.errors import IntegrityError
from dnnrepro.core.io import sha256_bytes

CASES = 300
INTERESTING = [0x00, 0xFF, 0x7F, 0x80, ord("{"), ord("}"), ord('"'), ord(":"), ord("9"), ord("[")]


@pytest.fixture
def alarm():
    """Fail instead of hanging: SIGALRM after 60 s turns a hang into an error."""

    def hung(*_):
        raise TimeoutError("the loader hung")

    old = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def mutate(data: bytes, rng: random.Random, hot: int = 0) -> bytes:
    """One to three random edits of ``data``; with ``hot`` > 0, half of them fall in data[:hot]."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not out:
            out += bytes([rng.randrange(256)])
            continue
        span = hot if hot and rng.random() < 0.5 else len(out)
        i = rng.randrange(min(span, len(out)))
        op = rng.randrange(6)
        if op == 0:  # flip one bit
            out[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # an interesting byte
            out[i] = rng.choice(INTERESTING)
        elif op == 2:  # truncate
            del out[i:]
        elif op == 3:  # insert random bytes
            out[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:  # delete a slice
            del out[i : i + rng.randint(1, 16)]
        else:  # duplicate a slice
            out[i:i] = out[i : i + rng.randint(1, 16)]
    return bytes(out)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


@pytest.fixture
def saved(tmp_path):
    """A weights checkpoint: (stem, the original tensors, tensor file path, sidecar record)."""
    stem = tmp_path / "w"
    model = _model()
    checkpoint.save_weights(stem, model, {"acc": 0.5, "tags": ["a", 1]})
    record = json.loads((tmp_path / "w.json").read_text())
    tensors, _ = checkpoint.load(stem)
    return stem, tensors, tmp_path / record["tensor_file"], record


def _load_or_integrity_error(stem):
    """checkpoint.load and load_weights; returns the loaded tensors or None on IntegrityError."""
    try:
        tensors, meta = checkpoint.load(stem)
    except IntegrityError:
        return None
    assert isinstance(meta, dict)
    assert all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items())
    try:
        checkpoint.load_weights(stem, _model())
    except IntegrityError:
        pass
    return tensors


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("rehash", [False, True], ids=["stale-hash", "matching-hash"])
def test_mutated_safetensors_load_correctly_or_raise_integrity_error(saved, alarm, rehash):
    stem, original, tensor_file, record = saved
    blob = tensor_file.read_bytes()
    header = 8 + int.from_bytes(blob[:8], "little")  # length prefix + JSON header
    rng = random.Random(1234 + rehash)
    loaded = 0
    for _ in range(CASES):
        bad = mutate(blob, rng, hot=header)
        tensor_file.write_bytes(bad)
        # with a matching hash the bytes reach the safetensors parser; without, the hash check
        sidecar = {**record, "sha256": sha256_bytes(bad) if rehash else record["sha256"]}
        (stem.parent / "w.json").write_text(json.dumps(sidecar))
        tensors = _load_or_integrity_error(stem)
        if tensors is not None:
            loaded += 1
            if not rehash or bad == blob:
                assert bad == blob and _same(tensors, original)
    assert loaded < CASES  # the mutations did reach the error paths


def test_mutated_sidecar_bytes_load_correctly_or_raise_integrity_error(saved, alarm):
    stem, original, _, record = saved
    text = json.dumps(record, indent=2).encode()
    rng = random.Random(99)
    failed = 0
    for _ in range(CASES):
        (stem.parent / "w.json").write_bytes(mutate(text, rng))
        tensors = _load_or_integrity_error(stem)
        if tensors is None:
            failed += 1
        else:  # the tensor file is untouched: a load that passes must give the saved tensors
            assert _same(tensors, original)
    assert failed > CASES // 2


CONFUSIONS = [
    None, 0, -1, 1.5, True, "", "x", "nan", [], [1], {}, {"a": 1},
    "../w-weights.safetensors", "w-weights.safetensors/", "/w-weights.safetensors",
    "w-weights.safetensors\x00", "a" * 64, "A" * 64, "g" * 64, 1e308,
]  # fmt: skip


def test_sidecar_type_confusions_raise_integrity_error(saved, alarm):
    stem, original, _, record = saved
    docs = [[], [record], "x", 1, None, True, {}]
    docs += [{**record, field: value} for field in record for value in CONFUSIONS]
    docs += [{k: v for k, v in record.items() if k != field} for field in record]
    for doc in docs:
        (stem.parent / "w.json").write_text(json.dumps(doc))
        tensors = _load_or_integrity_error(stem)
        if tensors is not None:  # only a confusion of the free-form meta may still load
            assert _same(tensors, original) and isinstance(doc["meta"], dict)
    for raw in ["[" * 100_000, '{"meta": ' * 50_000, "\udcff", "\ufeff{}"]:
        (stem.parent / "w.json").write_bytes(raw.encode("utf-8", "surrogateescape"))
        assert _load_or_integrity_error(stem) is None
