import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dnnrepro.core import checkpoint, data, models, train
from dnnrepro.core.errors import ConfigError, IntegrityError

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("lr", 0.0, "lr"),
        ("lr", -1.0, "lr"),
        ("batch_size", 0, "batch_size"),
        ("epochs", 0, "epochs"),
        ("optimizer", "rmsprop", "optimizer"),
        ("schedule", "exp", "schedule"),
        ("weight_decay", -1.0, "weight_decay"),
        ("momentum", 1.5, "momentum"),
    ],
)
def test_out_of_range_config_fails_before_any_work(field, value, message):
    cfg = train.TrainConfig(**{field: value})
    net = models.MLP(4, (3,), 2)
    called = []
    with pytest.raises(ConfigError, match=message):
        train.fit(
            net,
            (torch.rand(4, 4), torch.zeros(4, dtype=torch.long)),
            cfg,
            step_hooks=[lambda m, s: called.append(s)],
        )
    assert not called


def test_schedules():
    c = train.TrainConfig(epochs=10, lr=1.0, schedule="step", milestones=(5, 8), gamma=0.1)
    assert c.lr_at(0, 10) == 1.0 and c.lr_at(50, 10) == pytest.approx(0.1)
    assert c.lr_at(85, 10) == pytest.approx(0.01)
    p = train.TrainConfig(epochs=1, lr=1.0, schedule="poly", power=2.0)
    assert p.lr_at(5, 10) == pytest.approx(0.25)
    k = train.TrainConfig(epochs=1, lr=1.0, schedule="cosine")
    assert k.lr_at(0, 10) == 1.0 and k.lr_at(5, 10) == pytest.approx(0.5)


def test_hook_order_weight_decay_before_grad_hooks():
    """grad hooks see loss gradient + weight decay; step hooks see updated weights."""
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0)
    seen = {}

    def loss_fn(model, x, y):
        return (model(x) * 0).sum()  # zero loss gradient: only decay remains

    def grad_hook(model, step):
        seen["grad"] = float(model.weight.grad)

    def step_hook(model, step):
        seen["weight"] = float(model.weight.detach())

    cfg = train.TrainConfig(epochs=1, batch_size=1, lr=0.1, optimizer="sgd", weight_decay=0.5)
    train.fit(
        net,
        (torch.ones(1, 1), torch.zeros(1, dtype=torch.long)),
        cfg,
        loss_fn=loss_fn,
        grad_hooks=[grad_hook],
        step_hooks=[step_hook],
    )
    assert seen["grad"] == pytest.approx(1.0)  # 0.5 * 2.0
    assert seen["weight"] == pytest.approx(2.0 - 0.1 * 1.0)


def test_penalty_is_added_to_the_loss():
    net = torch.nn.Linear(2, 2)
    grads = []
    cfg = train.TrainConfig(epochs=1, batch_size=4, lr=1e-9, optimizer="sgd")
    x, y = torch.rand(4, 2), torch.zeros(4, dtype=torch.long)
    train.fit(
        net,
        (x, y),
        cfg,
        penalties=[lambda m: 1e6 * m.weight.abs().sum()],
        grad_hooks=[lambda m, s: grads.append(m.weight.grad.abs().min().item())],
    )
    assert grads[0] > 1e5


def test_training_is_deterministic_and_learns(data_dir):
    x, y = data.load("digits", "train", data_dir)
    xt, yt = data.load("digits", "test", data_dir)
    cfg = train.TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=1)
    finals = []
    for _ in range(2):
        train.seed_everything(1)
        net = models.MLP(64, (32,), 10)
        finals.append(train.fit(net, (x, y), cfg, test=(xt, yt)).final)
    assert finals[0] == finals[1]
    assert finals[0]["test_accuracy"] > 0.85


def _run_worker(data_dir, ckpt, out, slow=False):
    cmd = [sys.executable, str(HERE / "_resume_worker.py"), str(data_dir), str(ckpt), str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd + (["slow"] if slow else []), env=env)


@pytest.mark.slow
def test_sigkill_then_restart_resumes_and_matches_uninterrupted_run(data_dir, tmp_path):
    data.materialize(["digits"], data_dir)
    ref_out = tmp_path / "ref.json"
    assert _run_worker(data_dir, tmp_path / "ref", ref_out).wait(timeout=300) == 0

    ckpt, out = tmp_path / "killed", tmp_path / "killed.json"
    proc = _run_worker(data_dir, ckpt, out, slow=True)
    sidecar = ckpt / "train.json"
    deadline = time.time() + 120
    # kill once a mid-run checkpoint (past the first epoch) is on disk
    while time.time() < deadline:
        if sidecar.exists() and json.loads(sidecar.read_text())["meta"]["step"] >= 60:
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("no checkpoint appeared")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists()
    assert _run_worker(data_dir, ckpt, out).wait(timeout=300) == 0
    ref, resumed = json.loads(ref_out.read_text()), json.loads(out.read_text())
    assert resumed["resumed_from_step"] >= 60
    assert resumed["final"] == ref["final"]
    assert resumed["weights"] == ref["weights"]


def test_corrupted_checkpoint_is_refused_and_kept(tmp_path):
    net = models.MLP(4, (3,), 2)
    checkpoint.save_weights(tmp_path / "w", net, {"note": "x"})
    tensor_file = next(tmp_path.glob("w-*.safetensors"))
    blob = bytearray(tensor_file.read_bytes())
    blob[-1] ^= 0xFF
    tensor_file.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError) as err:
        checkpoint.load_weights(tmp_path / "w", models.MLP(4, (3,), 2))
    assert tensor_file.name in str(err.value) and "expected" in str(err.value)
    assert tensor_file.read_bytes() == bytes(blob)


def test_checkpoint_round_trip_and_shape_mismatch(tmp_path):
    net = models.MLP(4, (3,), 2)
    checkpoint.save_weights(tmp_path / "w", net, {"acc": 0.5})
    other = models.MLP(4, (3,), 2)
    assert checkpoint.load_weights(tmp_path / "w", other) == {"acc": 0.5}
    for a, b in zip(net.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(IntegrityError, match="do not fit"):
        checkpoint.load_weights(tmp_path / "w", models.MLP(4, (5,), 2))


def test_checkpoint_files_are_not_pickles(tmp_path):
    checkpoint.save_weights(tmp_path / "w", models.MLP(4, (3,), 2))
    blob = next(tmp_path.glob("w-*.safetensors")).read_bytes()
    assert not blob.startswith(b"\x80")  # pickle protocol marker
    json.loads((tmp_path / "w.json").read_text())


def test_resume_with_another_config_is_refused(tmp_path):
    x, y = torch.rand(8, 4), torch.zeros(8, dtype=torch.long)
    net = models.MLP(4, (3,), 2)
    train.fit(net, (x, y), train.TrainConfig(epochs=1, batch_size=4), checkpoint_dir=tmp_path)
    with pytest.raises(IntegrityError, match="another config"):
        train.fit(
            net, (x, y), train.TrainConfig(epochs=1, batch_size=4, lr=0.5), checkpoint_dir=tmp_path
        )


def test_mismatched_data_is_a_config_error():
    with pytest.raises(ConfigError, match="equal length"):
        train.fit(
            models.MLP(4, (3,), 2),
            (torch.rand(4, 4), torch.zeros(3, dtype=torch.long)),
            train.TrainConfig(),
        )


def test_rerun_of_a_finished_run_returns_its_metrics(tmp_path):
    x, y = torch.rand(16, 4), torch.randint(0, 2, (16,))
    cfg = train.TrainConfig(epochs=2, batch_size=4, seed=0)
    torch.manual_seed(0)
    first = train.fit(models.MLP(4, (3,), 2), (x, y), cfg, test=(x, y), checkpoint_dir=tmp_path)
    torch.manual_seed(0)
    again = train.fit(models.MLP(4, (3,), 2), (x, y), cfg, test=(x, y), checkpoint_dir=tmp_path)
    assert again.resumed_from_step == first.steps
    assert again.final == first.final  # train_loss included, not NaN


def test_divergence_is_a_one_line_user_error():
    from dnnrepro.core.errors import DnnreproError

    cfg = train.TrainConfig(epochs=1, batch_size=4)
    with pytest.raises(DnnreproError, match="lower lr"):
        train.fit(
            models.MLP(4, (3,), 2),
            (torch.rand(8, 4), torch.zeros(8, dtype=torch.long)),
            cfg,
            penalties=[lambda m: torch.tensor(float("nan"))],
        )
