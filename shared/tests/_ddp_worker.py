"""Run under torchrun: the core loop under DDP (gloo). argv: data_dir ckpt_dir out_prefix"""

import json
import sys

import torch
import torch.distributed as dist

from dnnrepro.core import data, models, train

torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
data_dir, ckpt, out = sys.argv[1], sys.argv[2], sys.argv[3]
x, y = data.load("digits", "train", data_dir)
xt, yt = data.load("digits", "test", data_dir)
train.seed_everything(5)
net = models.MLP(64, (32,), 10)
calls = []


def counting_hook(state, bucket):
    # a pass-through all-reduce hook, to show comm_hook reaches DDP
    calls.append(bucket.buffer().numel())
    t = bucket.buffer().div_(dist.get_world_size())
    return dist.all_reduce(t, async_op=True).get_future().then(lambda f: f.value()[0])


cfg = train.TrainConfig(epochs=2, batch_size=16, lr=0.05, seed=5)
res = train.fit(
    net, (x, y), cfg, test=(xt, yt), checkpoint_dir=ckpt, comm_hook=(None, counting_hook)
)
with open(f"{out}.{rank}.json", "w") as fh:
    json.dump(
        {
            "final": res.final,
            "steps": res.steps,
            "hook_calls": len(calls),
            "weights": [float(p.double().sum()) for p in net.parameters()],
        },
        fh,
    )
dist.destroy_process_group()
