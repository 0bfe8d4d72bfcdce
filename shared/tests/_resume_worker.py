"""Trains a small MLP on digits with checkpoints; used by test_train's kill-and-resume test.

argv: data_dir checkpoint_dir result_json [slow]
"""

import json
import sys
import time

import torch

from dnnrepro.core import data, models, train

torch.set_num_threads(1)
data_dir, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
slow = len(sys.argv) > 4
x, y = data.load("digits", "train", data_dir)
xt, yt = data.load("digits", "test", data_dir)
train.seed_everything(3)
net = models.MLP(64, (32,), 10)
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
hooks = [lambda m, s: time.sleep(0.01)] if slow else []
result = train.fit(net, (x, y), cfg, test=(xt, yt), checkpoint_dir=ckpt, step_hooks=hooks)
with open(out, "w") as fh:
    json.dump(
        {
            "final": result.final,
            "resumed_from_step": result.resumed_from_step,
            "weights": [float(p.sum()) for p in net.parameters()],
        },
        fh,
    )
