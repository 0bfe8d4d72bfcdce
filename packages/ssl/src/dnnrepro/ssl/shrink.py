"""Physically remove what SSL zeroed: filters, channels, shape fibres, neurons and residual blocks.

``shrink(model, example_input)`` returns a new, smaller network (the input model is untouched)
that computes the same function as the sparse one in eval mode (BatchNorm uses running stats):

1. **Depth.** A core ``BasicBlock`` whose residual branch is a constant (its conv2 is all zero, or
   its conv1 is all zero and the ReLU after bn1 turns the constant into 0) becomes a
   :class:`ResidualShortcut`: relu(shortcut(x) + c), c = what the branch adds.
2. **Filters and channels.** The graph (torch.fx) is followed from each Conv2d/Linear through
   channel-wise steps (BatchNorm, ReLU/tanh/sigmoid, pooling, dropout, flatten) to the layers that
   read it. Channel c is removed when the readers' weights for c are all zero (channel-wise
   sparsity; the producer's filter c is then useless), or when the producer's filter c is zero:
   channel c is then a constant map k_c, whose contribution is folded into the readers' biases
   (exact for Linear readers and unpadded convs; with a padded reader only k_c = 0 is exact, so
   other such filters stay). The producer's filter, the BatchNorm entries and the readers' input
   channels (or the hw features of c after a flatten) are all removed together. A layer whose output
   also goes anywhere else (a residual sum, the network output) keeps all its filters.
   **Residual sums.** Convs whose outputs meet in residual adds (through their BatchNorms) form one
   group with every layer that reads those sums (Torch-Pruning's dependency group); a channel that
   no reader of the group reads is removed from every producer, BN and reader at once. Groups with
   another source (a padding shortcut, the input) or another use (the output, a concat) are kept.
3. **Shape fibres.** A conv left with zero columns of its lowered N x (C*R*S) matrix becomes an
   :class:`InputGather` (whole channels unused) or a :class:`LoweredConv2d` (single fibres); a
   Linear with unused inputs becomes an InputGather.

Errors: a layer type that is not Conv2d/Linear/BatchNorm with parameters, an untraceable model, or a
layer whose filters would all be removed raise ConfigError.
"""

from __future__ import annotations

import copy
import operator
from dataclasses import dataclass, field

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from dnnrepro.core.errors import ConfigError
from dnnrepro.core.models import BasicBlock

from .modules import InputGather, LoweredConv2d, ResidualShortcut

SUPPORTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)
NORMS = (nn.BatchNorm2d, nn.BatchNorm1d)
CHANNELWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Dropout,
    nn.Identity,
)
CHANNELWISE_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.relu6,
    F.leaky_relu,
    torch.tanh,
    torch.sigmoid,
    F.tanh,
    F.sigmoid,
    F.max_pool2d,
    F.avg_pool2d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    F.dropout,
}
CHANNELWISE_METHODS = {"relu", "tanh", "sigmoid", "contiguous"}


class NetworkCollapsed(ConfigError):
    """:func:`shrink` found a layer with every filter gone: the network no longer reads its input
    (an SSL strength too large for the net). A ConfigError, so the CLI prints it as one line."""


@dataclass
class _Chain:
    """A producer layer, the BatchNorms on its way, and its readers (name, features per channel)."""

    producer: str
    norms: list[str] = field(default_factory=list)
    readers: list[tuple[str, int]] = field(default_factory=list)  # 0: a conv reader


def check_supported(model: nn.Module) -> None:
    """Raise ConfigError if a module holding parameters is not Conv2d, Linear or BatchNorm."""
    for name, m in model.named_modules():
        own = list(m.parameters(recurse=False))
        if own and not isinstance(m, SUPPORTED + (LoweredConv2d,)):
            raise ConfigError(
                f"shrink supports networks built from Conv2d, Linear and BatchNorm; "
                f"{name or 'the model'} is a {type(m).__name__}"
            )
        if isinstance(m, nn.Conv2d) and m.padding_mode != "zeros":
            raise ConfigError(f"shrink: {name} uses padding_mode={m.padding_mode!r}; only zeros")


def shrink(
    model: nn.Module, example_input: torch.Tensor, *, kept: dict[str, list[int]] | None = None
) -> nn.Module:
    """A smaller copy of ``model`` without its zero structures, equal to it in eval mode.

    ``example_input`` (B, C, H, W) or (B, F): any batch of the network's input shape; it is used to
    trace shapes and the constant maps of removed filters. ``kept``: if given, filled with
    {layer name: indices of the original filters (rows) it keeps} for every Conv2d/Linear whose
    filters were removed (layers left whole are not listed).
    """
    if not torch.is_tensor(example_input):
        raise ConfigError("shrink: example_input must be a tensor shaped like the network input")
    check_supported(model)
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        _remove_constant_blocks(model)
        chains = _find_chains(model)
        inputs = _reader_inputs(model, chains, example_input)
        record = kept if kept is not None else {}
        for chain in chains:
            _prune_chain(model, chain, inputs, record)
        for stream in _find_streams(model):
            _prune_stream(model, stream, record)
        _gather_inputs(model)
    return model


# --------------------------------------------------------------------------- depth


def _branch_constant(block: BasicBlock) -> torch.Tensor | None:
    """The per-channel constant the residual branch adds, or None if the branch is not constant."""
    conv1, conv2 = block.conv1, block.conv2

    def conv_out(conv):  # output of a zero conv: its bias, as a (1, N, 1, 1) map
        b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
        return b.detach().view(1, -1, 1, 1)

    if bool((conv2.weight == 0).all()):
        return block.bn2(conv_out(conv2)).flatten()
    bn2 = block.bn2
    if isinstance(bn2, nn.BatchNorm2d) and bn2.affine and bool((bn2.weight == 0).all()):
        return bn2.bias.detach().clone()  # a zero BN scale outputs its shift whatever the input
    if bool((conv1.weight == 0).all()):
        mid = F.relu(block.bn1(conv_out(conv1)))
        if bool((mid == 0).all()):  # conv2 then reads zeros everywhere, padding included
            return block.bn2(conv_out(conv2)).flatten()
    return None


def _is_block(m: nn.Module) -> bool:
    """A core BasicBlock, or a torchvision-style one (conv1/bn1/conv2/bn2 and ``downsample``,
    forward relu(bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)))."""
    if isinstance(m, BasicBlock):
        return True
    names = ("conv1", "bn1", "conv2", "bn2", "downsample")
    return (
        type(m).__name__ == "BasicBlock"
        and all(hasattr(m, a) for a in names)
        and isinstance(m.conv2, nn.Conv2d)
        and isinstance(m.bn2, nn.BatchNorm2d)
    )


def _remove_constant_blocks(model: nn.Module) -> None:
    blocks = [(n, m) for n, m in model.named_modules() if n and _is_block(m)]
    for name, block in blocks:
        offset = _branch_constant(block)
        if offset is not None:
            shortcut = getattr(block, "shortcut", None)
            if shortcut is None:
                shortcut = block.downsample if block.downsample is not None else nn.Identity()
            new = ResidualShortcut(shortcut, offset.numel())
            new.offset.copy_(offset)
            _set_module(model, name, new)


# --------------------------------------------------------------------------- graph


def _trace(model: nn.Module) -> torch.fx.Graph:
    try:
        return torch.fx.symbolic_trace(model).graph
    except Exception as exc:  # fx raises many kinds; the user needs one message
        raise ConfigError(
            f"shrink could not trace {type(model).__name__} with torch.fx ({exc}); "
            "data-dependent control flow in forward() is not supported"
        ) from exc


def _flatten_start(node: torch.fx.Node, modules: dict) -> int | None:
    """start_dim if ``node`` flattens (B, C, H, W) to (B, C*H*W), else None."""
    if node.op == "call_module" and isinstance(modules.get(node.target), nn.Flatten):
        m = modules[node.target]
        return m.start_dim if m.end_dim == -1 else None
    if (node.op == "call_function" and node.target is torch.flatten) or (
        node.op == "call_method" and node.target == "flatten"
    ):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
        return start if end == -1 else None
    return None


def _find_chains(model: nn.Module) -> list[_Chain]:
    graph = _trace(model)
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    chains = []
    for node in graph.nodes:
        if node.op != "call_module" or calls[node.target] != 1:
            continue
        m = modules[node.target]
        if not (isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1)):
            continue
        chain = _Chain(node.target)
        channels = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        if _walk(node, chain, modules, calls, channels, is4d=isinstance(m, nn.Conv2d), flat=False):
            if chain.readers:
                chains.append(chain)
    return chains


def _only_input(user: torch.fx.Node, node: torch.fx.Node) -> bool:
    """``node`` is the first positional argument of ``user`` and no other argument is a node."""
    others = list(user.args[1:]) + list(user.kwargs.values())
    return (
        bool(user.args)
        and user.args[0] is node
        and not any(isinstance(a, torch.fx.Node) for a in others)
    )


def _walk(node, chain, modules, calls, channels, is4d, flat) -> bool:
    """Follow ``node``'s users through channel-wise steps; False if a path leaves the chain."""
    for user in node.users:
        if not _only_input(user, node):
            return False
        if user.op == "call_module":
            m = modules[user.target]
            # a module with state (weights, BN statistics) must be called once to be resized; a
            # stateless activation or pooling module may be shared (torchvision's self.relu)
            if calls[user.target] != 1 and not isinstance(m, CHANNELWISE_MODULES):
                return False
            if isinstance(m, nn.Conv2d):
                if not (is4d and not flat and m.groups == 1 and m.in_channels == channels):
                    return False
                chain.readers.append((user.target, 0))
            elif isinstance(m, nn.Linear):
                if is4d and not flat:
                    return False
                if m.in_features % channels:
                    return False
                chain.readers.append((user.target, m.in_features // channels))
            elif isinstance(m, NORMS):
                if flat or m.num_features != channels:
                    return False
                chain.norms.append(user.target)
                if not _walk(user, chain, modules, calls, channels, is4d, flat):
                    return False
            elif isinstance(m, CHANNELWISE_MODULES):
                if not _walk(user, chain, modules, calls, channels, is4d, flat):
                    return False
            elif _flatten_start(user, modules) == 1 and is4d and not flat:
                if not _walk(user, chain, modules, calls, channels, is4d, True):
                    return False
            else:
                return False
        elif (user.op == "call_function" and user.target in CHANNELWISE_FUNCTIONS) or (
            user.op == "call_method" and user.target in CHANNELWISE_METHODS
        ):
            if not _walk(user, chain, modules, calls, channels, is4d, flat):
                return False
        elif _flatten_start(user, modules) == 1 and is4d and not flat:
            if not _walk(user, chain, modules, calls, channels, is4d, True):
                return False
        else:
            return False
    return True


# --------------------------------------------------------------------------- filters, channels


def _reader_inputs(model, chains, example_input) -> dict[str, torch.Tensor]:
    """The input each reader layer sees on ``example_input`` (constants of zero filters)."""
    names = {r for c in chains for r, _ in c.readers}
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    for name in names:
        module = model.get_submodule(name)

        def hook(_m, inp, _out, name=name):
            seen[name] = inp[0].detach()

        hooks.append(module.register_forward_hook(hook))
    try:
        model(example_input)
    except Exception as exc:
        raise ConfigError(f"shrink: example_input does not fit the model: {exc}") from exc
    finally:
        for h in hooks:
            h.remove()
    return seen


def _channel_values(inp: torch.Tensor, c: int, per: int) -> torch.Tensor:
    if per == 0:  # conv reader: (B, C, H, W)
        return inp[:, c]
    return inp[..., c * per : (c + 1) * per]


def _reader_columns(weight: torch.Tensor, c: int, per: int) -> torch.Tensor:
    if per == 0:
        return weight[:, c]
    return weight[:, c * per : (c + 1) * per]


def _record_kept(record: dict[str, list[int]], name: str, keep: torch.Tensor) -> None:
    """Compose ``keep`` (over the layer's current rows) with what ``name`` kept before."""
    now = torch.nonzero(keep).flatten().tolist()
    before = record.get(name)
    record[name] = now if before is None else [before[i] for i in now]


def _prune_chain(
    model: nn.Module, chain: _Chain, inputs: dict[str, torch.Tensor], record: dict
) -> None:
    producer = model.get_submodule(chain.producer)
    w = producer.weight
    channels = w.shape[0]
    zero_filter = w.reshape(channels, -1).eq(0).all(dim=1)
    readers = [(name, model.get_submodule(name), per) for name, per in chain.readers]
    keep = torch.ones(channels, dtype=torch.bool)
    folds: list[tuple[int, float]] = []
    for c in range(channels):
        unread = all(bool(_reader_columns(r.weight, c, per).eq(0).all()) for _, r, per in readers)
        if unread:
            keep[c] = False
            continue
        if not zero_filter[c]:
            continue
        values = [_channel_values(inputs[name], c, per) for name, _, per in readers]
        if not all(bool((v == v.flatten()[0]).all()) for v in values):
            continue  # not a constant map: some step is not channel-wise after all
        k = float(values[0].flatten()[0])
        padded = any(per == 0 and any(p != 0 for p in r.padding) for _, r, per in readers)
        if k != 0.0 and padded:
            continue  # a constant seen through zero padding is not a constant: keep it
        keep[c] = False
        folds.append((c, k))
    if bool(keep.all()):
        return
    if not bool(keep.any()):
        raise NetworkCollapsed(
            f"shrink: all {channels} filters of {chain.producer} would be removed (they are zero "
            "or unread), so the network ignores its input; train with a smaller SSL strength"
        )
    for name, reader, per in readers:
        bias = reader.bias.detach().clone() if reader.bias is not None else None
        for c, k in folds:
            if k == 0.0:
                continue
            extra = _reader_columns(reader.weight, c, per).reshape(reader.weight.shape[0], -1)
            bias = (
                bias if bias is not None else torch.zeros(reader.weight.shape[0])
            ) + k * extra.sum(1)
        cols = keep if per == 0 else keep.repeat_interleave(per)
        _set_module(model, name, _resized(reader, reader.weight[:, cols], bias))
    for name in chain.norms:
        _set_module(model, name, _resized_norm(model.get_submodule(name), keep))
    bias = producer.bias[keep] if producer.bias is not None else None
    _set_module(model, chain.producer, _resized(producer, w[keep], bias))
    _record_kept(record, chain.producer, keep)


# --------------------------------------------------------------------------- residual sums

_ADDS = {operator.add, operator.iadd, torch.add}


def _is_add(node: torch.fx.Node) -> bool:
    return (node.op == "call_function" and node.target in _ADDS) or (
        node.op == "call_method" and node.target in ("add", "add_")
    )


def _channelwise(node: torch.fx.Node, modules: dict) -> bool:
    """A one-input step that maps each channel on its own and holds no state."""
    if node.op == "call_module":
        return isinstance(modules.get(node.target), CHANNELWISE_MODULES)
    return (node.op == "call_function" and node.target in CHANNELWISE_FUNCTIONS) or (
        node.op == "call_method" and node.target in CHANNELWISE_METHODS
    )


@dataclass
class _Stream:
    """Residual sums coupled through their channels: the convs (and BNs) feeding them, and the
    layers reading them (name, features per channel; 0: a conv reader)."""

    producers: list[str] = field(default_factory=list)
    norms: list[str] = field(default_factory=list)
    readers: list[tuple[str, int]] = field(default_factory=list)


def _find_streams(model: nn.Module) -> list[_Stream]:
    """Groups of residual adds whose channels are coupled, with every producer and reader.

    Channel c of a group can be removed from all its producers, their BatchNorms and all readers
    together when no reader reads it (Torch-Pruning's dependency groups, restricted to the case
    that is exact whatever the producers compute). A group with any other source (a pad
    shortcut, the network input) or user (the network output, a concatenation) is left alone.
    """
    graph = _trace(model)
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    adds = [n for n in graph.nodes if _is_add(n)]
    seen: set[torch.fx.Node] = set()
    streams = []
    for start in adds:
        if start in seen:
            continue
        stream, ok, todo, group = _Stream(), True, [start], set()
        while todo and ok:
            add = todo.pop()
            if add in group:
                continue
            group.add(add)
            for arg in add.args:
                if isinstance(arg, torch.fx.Node):
                    ok = ok and _source(arg, stream, modules, calls, todo)
            ok = ok and _sinks(add, stream, modules, calls, todo, flat=False)
        seen |= group
        if ok and stream.producers and stream.readers:
            streams.append(stream)
    return streams


def _single(name: str, modules: dict, calls: dict) -> bool:
    return calls.get(name, 0) == 1


def _source(node, stream, modules, calls, todo) -> bool:
    """Walk back from an add input to the conv that makes it (through its BN and channel-wise
    steps), then forward from there: every other user on the way is a reader of the stream."""
    bn = None
    while True:
        if _is_add(node):
            todo.append(node)
            return True
        if node.op == "call_module":
            m = modules[node.target]
            if isinstance(m, nn.Conv2d) and m.groups == 1 and _single(node.target, modules, calls):
                if bn is not None and len(node.users) != 1:
                    return False  # the conv's raw output is also used before its BN
                stream.producers.append(node.target)
                return _sinks(bn if bn is not None else node, stream, modules, calls, todo, False)
            if isinstance(m, nn.BatchNorm2d) and _single(node.target, modules, calls):
                if bn is not None:
                    return False  # two BNs on one path: not a plain conv-BN producer
                stream.norms.append(node.target)
                bn = node
                node = node.args[0]
                continue
        if _channelwise(node, modules) and node.args and isinstance(node.args[0], torch.fx.Node):
            # a relu after an earlier add passes that add's channels on: same stream
            node = node.args[0]
            continue
        return False


def _sinks(node, stream, modules, calls, todo, flat) -> bool:
    """Follow an add's output to the layers that read it; other adds join the stream."""
    for user in node.users:
        if _is_add(user):
            todo.append(user)
            continue
        if user.op == "output":
            return False  # the network's output: every channel is needed
        if user.op == "call_module":
            m = modules[user.target]
            if isinstance(m, nn.Conv2d) and not flat and m.groups == 1:
                if not _single(user.target, modules, calls) or user.args[0] is not node:
                    return False
                stream.readers.append((user.target, 0))
                continue
            if isinstance(m, nn.Linear) and flat:
                if not _single(user.target, modules, calls):
                    return False
                stream.readers.append((user.target, -1))  # features per channel: set later
                continue
        if _flatten_start(user, modules) == 1 and not flat:
            if not _sinks(user, stream, modules, calls, todo, flat=True):
                return False
            continue
        if _channelwise(user, modules) and _only_input(user, node):
            if not _sinks(user, stream, modules, calls, todo, flat):
                return False
            continue
        return False
    return True


def _prune_stream(model: nn.Module, stream: _Stream, record: dict) -> None:
    # a layer reached along two paths is listed twice: resize each once
    stream.producers = list(dict.fromkeys(stream.producers))
    stream.norms = list(dict.fromkeys(stream.norms))
    stream.readers = list(dict.fromkeys(stream.readers))
    channels = model.get_submodule(stream.producers[0]).weight.shape[0]
    readers = []
    for name, per in stream.readers:
        r = model.get_submodule(name)
        if per == -1:
            if r.in_features % channels:
                return
            per = r.in_features // channels
        elif r.weight.shape[1] != channels:
            return
        readers.append((name, r, per))
    if any(model.get_submodule(p).weight.shape[0] != channels for p in stream.producers):
        return
    keep = torch.tensor(
        [
            not all(bool(_reader_columns(r.weight, c, per).eq(0).all()) for _, r, per in readers)
            for c in range(channels)
        ]
    )
    if bool(keep.all()) or not bool(keep.any()):
        return  # nothing to remove, or nothing would be read at all (left to the user to see)
    for name, reader, per in readers:
        cols = keep if per == 0 else keep.repeat_interleave(per)
        _set_module(model, name, _resized(reader, reader.weight[:, cols], reader.bias))
    for name in stream.norms:
        _set_module(model, name, _resized_norm(model.get_submodule(name), keep))
    for name in stream.producers:
        p = model.get_submodule(name)
        bias = p.bias[keep] if p.bias is not None else None
        _set_module(model, name, _resized(p, p.weight[keep], bias))
        _record_kept(record, name, keep)


# --------------------------------------------------------------------------- shape fibres


def _gather_inputs(model: nn.Module) -> None:
    """Replace layers that read zero columns by InputGather / LoweredConv2d."""
    for name, m in list(model.named_modules()):
        if isinstance(m, nn.Linear):
            used = m.weight.ne(0).any(dim=0)
            if bool(used.all()):
                continue
            _check_some(name, used)
            inner = _resized(m, m.weight[:, used], m.bias)
            _set_module(model, name, _gather(inner, used))
        elif isinstance(m, nn.Conv2d) and m.groups == 1:
            cols = m.weight.reshape(m.out_channels, -1).ne(0).any(dim=0)
            if bool(cols.all()):
                continue
            _check_some(name, cols)
            per_channel = cols.reshape(m.in_channels, -1)
            used = per_channel.any(dim=1)
            if bool(per_channel[used].all()):  # only whole channels unused: gather them
                inner = _resized(m, m.weight[:, used], m.bias)
                _set_module(model, name, _gather(inner, used))
            else:
                _set_module(model, name, _lowered(m, cols))


def _check_some(name: str, used: torch.Tensor) -> None:
    if not bool(used.any()):
        raise ConfigError(
            f"shrink: every weight of {name} is zero (all filters removed); the layer outputs only "
            "its bias: train with a smaller SSL strength"
        )


def _gather(inner: nn.Module, used: torch.Tensor) -> InputGather:
    g = InputGather(inner, int(used.sum()))
    g.index.copy_(torch.nonzero(used).flatten())
    return g


def _lowered(conv: nn.Conv2d, cols: torch.Tensor) -> LoweredConv2d:
    new = LoweredConv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        int(cols.sum()),
        conv.bias is not None,
    ).to(conv.weight)
    new.weight.copy_(conv.weight.reshape(conv.out_channels, -1)[:, cols])
    new.index.copy_(torch.nonzero(cols).flatten())
    if conv.bias is not None:
        new.bias.copy_(conv.bias)
    return new


# --------------------------------------------------------------------------- module surgery


def _set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, leaf, new)


def _resized(old: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Module:
    """A Conv2d/Linear like ``old`` holding ``weight`` (and ``bias``; None for no bias)."""
    if isinstance(old, nn.Linear):
        new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    else:
        new = nn.Conv2d(
            weight.shape[1] * old.groups,
            weight.shape[0],
            old.kernel_size,
            old.stride,
            old.padding,
            old.dilation,
            old.groups,
            bias is not None,
            old.padding_mode,
        )
    new = new.to(weight)
    new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)
    return new


def _resized_norm(old: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = type(old)(int(keep.sum()), old.eps, old.momentum, old.affine, old.track_running_stats).to(
        next(iter(old.state_dict().values()))
    )
    if old.affine:
        new.weight.copy_(old.weight[keep])
        new.bias.copy_(old.bias[keep])
    if old.track_running_stats:
        new.running_mean.copy_(old.running_mean[keep])
        new.running_var.copy_(old.running_var[keep])
        new.num_batches_tracked.copy_(old.num_batches_tracked)
    new.train(old.training)
    return new
