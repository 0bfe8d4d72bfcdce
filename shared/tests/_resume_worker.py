"""Trains a small MLP on digits with checkpoints and stateful callbacks; used by test_train's
kill-and-resume test.

argv: data_dir checkpoint_dir result_json [slow]
"""

import json
import sys
import time

import torch

from dnnrepro.core import data, models, train
from dnnrepro.core.sparsity import FixedMask, magnitude_prune


class Pull(train.Callback):
    """Pulls the first layer toward a running average of itself: the weights depend on state
    (a tensor and a counter) that only the checkpoint carries across a kill."""

    def __init__(self, slow: bool):
        self.slow = slow
        self.average: torch.Tensor | None = None
        self.calls = 0

    @torch.no_grad()
    def after_step(self, model, step):
        w = model.layers.fc1.weight
        self.average = w.clone() if self.average is None else 0.9 * self.average + 0.1 * w
        self.calls += 1
        w.add_(0.05 * (self.average - w) * (self.calls % 3))
        if self.slow:
            time.sleep(0.01)

    def state_dict(self):
        state = {"calls": self.calls}
        if self.average is not None:
            state["average"] = self.average
        return state

    def load_state_dict(self, state):
        self.calls = state["calls"]
        self.average = state.get("average")


torch.set_num_threads(1)
data_dir, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
slow = len(sys.argv) > 4
x, y = data.load("digits", "train", data_dir)
xt, yt = data.load("digits", "test", data_dir)
train.seed_everything(3)
net = models.MLP(64, (32,), 10)
mask = FixedMask({"layers.fc2.weight": magnitude_prune(net.layers.fc2.weight, 0.5)})
cfg = train.TrainConfig(
    epochs=4,
    batch_size=32,
    lr=0.05,
    optimizer="momentum",
    weight_decay=1e-4,
    schedule="cosine",
    seed=3,
    checkpoint_every=7,
)
pull = Pull(slow)
result = train.fit(net, (x, y), cfg, test=(xt, yt), checkpoint_dir=ckpt, callbacks=[mask, pull])
with open(out, "w") as fh:
    json.dump(
        {
            "final": result.final,
            "resumed_from_step": result.resumed_from_step,
            "weights": [p.detach().flatten().tolist() for p in net.parameters()],
            "calls": pull.calls,
            "masked_nonzero": int(
                (net.layers.fc2.weight[~mask.masks["layers.fc2.weight"]] != 0).sum()
            ),
        },
        fh,
    )
