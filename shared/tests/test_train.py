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
from dnnrepro.core.errors import ConfigError, DataError, IntegrityError

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
    cfg = train.TrainConfig(**{"epochs": 1, field: value})
    net = models.MLP(4, (3,), 2)
    called = []

    class Record(train.Callback):
        def on_train_start(self, model):
            called.append(0)

    with pytest.raises(ConfigError, match=message):
        train.fit(
            net, (torch.rand(4, 4), torch.zeros(4, dtype=torch.long)), cfg, callbacks=[Record()]
        )
    assert not called


def test_train_config_is_keyword_only_with_exactly_one_length():
    with pytest.raises(TypeError):
        train.TrainConfig(10, 64)
    with pytest.raises(ConfigError, match="exactly one of epochs= or steps="):
        train.TrainConfig(lr=0.1)
    with pytest.raises(ConfigError, match="exactly one of epochs= or steps="):
        train.TrainConfig(epochs=2, steps=10)
    with pytest.raises(ConfigError, match="steps must be"):
        train.TrainConfig(steps=0).validate()
    cfg = train.TrainConfig(epochs=2)
    cfg.steps = 5  # mutated after construction: caught when fit validates
    with pytest.raises(ConfigError, match="exactly one"):
        train.fit(models.MLP(4, (3,), 2), (torch.rand(4, 4), torch.zeros(4).long()), cfg)


def test_steps_runs_that_many_steps_and_spans_the_schedule():
    x, y = torch.rand(40, 4), torch.randint(0, 2, (40,))
    cfg = train.TrainConfig(steps=7, batch_size=16, lr=1.0, schedule="cosine", optimizer="sgd")
    # 3 steps per epoch: 7 steps are 2 full epochs and 1 step of a third
    res = train.fit(models.MLP(4, (3,), 2), (x, y), cfg)
    assert res.steps == 7
    assert [r["step"] for r in res.history] == [3, 6, 7]
    assert cfg.lr_at(7, 3) == pytest.approx(0.0) and cfg.lr_at(0, 3) == 1.0
    by_epochs = train.TrainConfig(epochs=2, batch_size=16)
    assert train.fit(models.MLP(4, (3,), 2), (x, y), by_epochs).steps == 6
    truncated = train.TrainConfig(steps=7, batch_size=16, max_steps=2)
    assert train.fit(models.MLP(4, (3,), 2), (x, y), truncated).steps == 2
    assert truncated.total_steps(3) == 7  # max_steps does not shorten the schedule


def test_loss_fn_receives_the_step():
    seen = []

    def loss_fn(model, x, y, step):
        seen.append(step)
        return torch.nn.functional.cross_entropy(model(x), y)

    cfg = train.TrainConfig(epochs=2, batch_size=4)
    train.fit(
        models.MLP(4, (3,), 2), (torch.rand(8, 4), torch.zeros(8).long()), cfg, loss_fn=loss_fn
    )
    assert seen == [0, 1, 2, 3]


def test_schedules():
    c = train.TrainConfig(epochs=10, lr=1.0, schedule="step", milestones=(5, 8), gamma=0.1)
    assert c.lr_at(0, 10) == 1.0 and c.lr_at(50, 10) == pytest.approx(0.1)
    assert c.lr_at(85, 10) == pytest.approx(0.01)
    p = train.TrainConfig(epochs=1, lr=1.0, schedule="poly", power=2.0)
    assert p.lr_at(5, 10) == pytest.approx(0.25)
    k = train.TrainConfig(epochs=1, lr=1.0, schedule="cosine")
    assert k.lr_at(0, 10) == 1.0 and k.lr_at(5, 10) == pytest.approx(0.5)


def test_callback_order_weight_decay_before_after_backward():
    """after_backward sees loss gradient + weight decay; after_step sees updated weights."""
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0)
    seen = {}

    def loss_fn(model, x, y, step):
        return (model(x) * 0).sum()  # zero loss gradient: only decay remains

    class Spy(train.Callback):
        def after_backward(self, model, step):
            seen["grad"] = float(model.weight.grad)

        def after_step(self, model, step):
            seen["weight"] = float(model.weight.detach())

    cfg = train.TrainConfig(epochs=1, batch_size=1, lr=0.1, optimizer="sgd", weight_decay=0.5)
    train.fit(
        net,
        (torch.ones(1, 1), torch.zeros(1, dtype=torch.long)),
        cfg,
        loss_fn=loss_fn,
        callbacks=[Spy()],
    )
    assert seen["grad"] == pytest.approx(1.0)  # 0.5 * 2.0
    assert seen["weight"] == pytest.approx(2.0 - 0.1 * 1.0)


class _GradSpy(train.Callback):
    def __init__(self):
        self.grads = []

    def after_backward(self, model, step):
        self.grads.append(model.weight.grad.detach().clone())


def test_penalty_is_added_to_the_loss():
    net = torch.nn.Linear(2, 2)
    spy = _GradSpy()
    cfg = train.TrainConfig(epochs=1, batch_size=4, lr=1e-9, optimizer="sgd")
    x, y = torch.rand(4, 2), torch.zeros(4, dtype=torch.long)
    train.fit(
        net,
        (x, y),
        cfg,
        penalties=[lambda m: 1e6 * m.weight.abs().sum()],
        callbacks=[spy],
    )
    assert spy.grads[0].abs().min() > 1e5


def test_grad_fn_keeps_weight_decay_and_penalties():
    """grad_fn replaces the data gradient; penalty and decay are still added on top of it."""
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(2.0)
    spy, losses = _GradSpy(), []

    def grad_fn(model, x, y, step):
        model.weight.grad = torch.full_like(model.weight, 3.0)  # a made-up data gradient
        losses.append(step)
        return torch.tensor(0.25)

    cfg = train.TrainConfig(epochs=1, batch_size=1, lr=1e-3, optimizer="sgd", weight_decay=0.5)
    res = train.fit(
        net,
        (torch.ones(1, 1), torch.zeros(1, dtype=torch.long)),
        cfg,
        grad_fn=grad_fn,
        penalties=[lambda m: 0.1 * (m.weight**2).sum()],
        callbacks=[spy],
    )
    # 3 (grad_fn) + 0.1 * 2 * w (penalty) + 0.5 * w (decay), w = 2
    assert float(spy.grads[0]) == pytest.approx(3.0 + 0.4 + 1.0)
    assert losses == [0]
    assert res.final["train_loss"] == pytest.approx(0.25 + 0.4)  # data loss + penalty
    with pytest.raises(ConfigError, match="not both"):
        train.fit(
            net,
            (torch.ones(1, 1), torch.zeros(1).long()),
            cfg,
            grad_fn=grad_fn,
            loss_fn=train.cross_entropy,
        )


def test_callback_without_state_methods_fails_when_fit_starts():
    class NoState:
        def after_step(self, model, step):
            raise AssertionError("must not run")

    with pytest.raises(ConfigError, match="state_dict"):
        train.fit(
            models.MLP(4, (3,), 2),
            (torch.rand(4, 4), torch.zeros(4).long()),
            train.TrainConfig(epochs=1),
            callbacks=[NoState()],
        )
    with pytest.raises(ConfigError, match="state_dict"):
        train.fit(
            models.MLP(4, (3,), 2),
            (torch.rand(4, 4), torch.zeros(4).long()),
            train.TrainConfig(epochs=1),
            callbacks=[lambda m, s: None],
        )


class _Counter(train.Callback):
    def __init__(self):
        self.count, self.total = 0, torch.zeros(2)

    def after_step(self, model, step):
        self.count += 1
        self.total += 1

    def state_dict(self):
        return {"count": self.count, "total": self.total}

    def load_state_dict(self, state):
        self.count, self.total = state["count"], state["total"].clone()


def test_callback_state_is_in_the_checkpoint_and_restored(tmp_path):
    x, y = torch.rand(16, 4), torch.randint(0, 2, (16,))
    cfg = train.TrainConfig(epochs=2, batch_size=4)
    first = _Counter()
    train.fit(models.MLP(4, (3,), 2), (x, y), cfg, checkpoint_dir=tmp_path, callbacks=[first])
    sidecar = json.loads((tmp_path / "train.json").read_text())
    assert sidecar["meta"]["callbacks"] == [{"count": 8}]
    tensors, _ = checkpoint.load(tmp_path / "train")
    assert torch.equal(tensors["callback.0.total"], torch.full((2,), 8.0))
    again = _Counter()
    train.fit(models.MLP(4, (3,), 2), (x, y), cfg, checkpoint_dir=tmp_path, callbacks=[again])
    assert again.count == 8 and torch.equal(again.total, torch.full((2,), 8.0))
    with pytest.raises(IntegrityError, match="callbacks"):
        train.fit(models.MLP(4, (3,), 2), (x, y), cfg, checkpoint_dir=tmp_path)


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
    assert resumed["weights"] == ref["weights"]  # every weight, bit for bit
    assert resumed["calls"] == ref["calls"]  # the callback's counter came back from the checkpoint
    assert resumed["masked_nonzero"] == ref["masked_nonzero"] == 0


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


def test_mismatched_data_is_a_data_error():
    with pytest.raises(DataError, match="training data: images and labels"):
        train.fit(
            models.MLP(4, (3,), 2),
            (torch.rand(4, 4), torch.zeros(3, dtype=torch.long)),
            train.TrainConfig(epochs=1),
        )
    with pytest.raises(DataError, match="must be a pair"):
        train.check_pair(torch.rand(4, 4), "x")


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


def test_inv_schedule_is_danns_annealing():
    config = train.TrainConfig(steps=100, batch_size=8, lr=0.01, schedule="inv", power=0.75)
    assert config.lr_at(0, 10) == pytest.approx(0.01)
    assert config.lr_at(50, 10) == pytest.approx(0.01 / (1 + 10 * 0.5) ** 0.75)
    assert config.lr_at(100, 10) == pytest.approx(0.01 / 11**0.75)
    with pytest.raises(ConfigError):
        train.TrainConfig(steps=10, batch_size=8, schedule="inv", inv_alpha=0.0).validate()
