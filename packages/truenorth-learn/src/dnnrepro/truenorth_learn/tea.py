"""The TrueNorth-constrained layer and network, trained through a Gaussian approximation.

Esser et al. (NIPS 2015) treat every binary quantity of the chip as a probability: an input spike
is active with probability x, the crossbar bit of synapse (i, j) is set with probability p_ij, and
the synapse's integer weight s_ij is fixed by the axon type of axon i. The neuron input current
V_j = leak_j + sum_i [spike_i and bit_ij] s_ij is a sum of independent terms, so

    mu_j    = leak_j + sum_i x_i p_ij s_ij
    sigma2_j = sum_i (x_i p_ij)(1 - x_i p_ij) s_ij^2

and the firing probability P(V_j >= 1) is approximated by Phi((mu_j - 1/2) / sigma_j) (the
continuity correction of an integer V against threshold 1; at sigma -> 0 it is the exact step).
The leak is trained as a float and used rounded (straight-through), so training sees the integer
leak that is deployed. Layers propagate firing probabilities; the readout averages the output
neurons' probabilities per class (neuron j belongs to class j mod num_classes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError

from . import chip

SIGMA_EPS = 1e-6  # variance floor: keeps gradients finite when every synapse is deterministic


class TeaLayer(nn.Module):
    """A dense layer of TrueNorth neurons with trained connection probabilities.

    Parameters: ``p`` (in_features, out_features) in [0, 1], ``leak`` (out_features,) float,
    rounded in the forward pass. Buffers: ``axon_type`` (in_features,) = i mod axon_types (types
    spread evenly over the axons) and ``weight_table`` (out_features, axon_types) int64, every
    neuron starting from ``weights``. Forward: spike probabilities (B, in_features) in [0, 1] ->
    firing probabilities (B, out_features).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        axon_types: int = 4,
        weights: Sequence[int] = (-2, -1, 1, 2),
    ):
        super().__init__()
        if not (isinstance(in_features, int) and in_features >= 1):
            raise ConfigError(f"in_features must be an integer >= 1, not {in_features!r}")
        if not (isinstance(out_features, int) and out_features >= 1):
            raise ConfigError(f"out_features must be an integer >= 1, not {out_features!r}")
        if not (isinstance(axon_types, int) and 1 <= axon_types <= chip.MAX_AXON_TYPES):
            raise ConfigError(f"axon_types must be 1..{chip.MAX_AXON_TYPES}, not {axon_types!r}")
        weights = tuple(weights)
        if len(weights) != axon_types:
            raise ConfigError(f"give one weight per axon type: {axon_types} types, {weights}")
        if not all(isinstance(w, int) and abs(w) <= chip.MAX_MAGNITUDE for w in weights):
            raise ConfigError(f"weights must be integers in [-255, 255], not {weights}")
        self.in_features, self.out_features = in_features, out_features
        self.p = nn.Parameter(torch.empty(in_features, out_features))
        self.leak = nn.Parameter(torch.zeros(out_features))
        self.register_buffer("axon_type", torch.arange(in_features) % axon_types)
        table = torch.tensor(weights, dtype=torch.int64).repeat(out_features, 1)
        self.register_buffer("weight_table", table)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """p ~ U(0, 1), leak = 0 (a neutral start: no synapse is favoured)."""
        with torch.no_grad():
            self.p.copy_(torch.rand(self.p.shape, generator=generator))
            self.leak.zero_()

    def synapse_weights(self) -> torch.Tensor:
        """s_ij: the integer weight of each synapse, (in_features, out_features) int64."""
        return self.weight_table.t()[self.axon_type]

    def integer_leak(self) -> torch.Tensor:
        """The deployed leak: round(leak) clipped to [-255, 255], (out_features,) float."""
        return self.leak.round().clamp(-chip.MAX_MAGNITUDE, chip.MAX_MAGNITUDE)

    def moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of the integer neuron input V for input spike probabilities x."""
        s = self.synapse_weights().to(x.dtype)
        p = self.p
        # straight-through rounding: the forward uses the deployed integer leak
        leak = self.leak + (self.integer_leak() - self.leak).detach()
        mu = leak + x @ (p * s)
        var = x @ (p * s * s) - (x * x) @ (p * p * s * s)
        return mu, var.clamp_min(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, var = self.moments(x)
        return torch.special.ndtr((mu - (chip.THRESHOLD - 0.5)) / torch.sqrt(var + SIGMA_EPS))

    @torch.no_grad()
    def clip_(self) -> None:
        """Project onto the chip's ranges: p in [0, 1], leak in [-255, 255]."""
        self.p.clamp_(0.0, 1.0)
        self.leak.clamp_(-chip.MAX_MAGNITUDE, chip.MAX_MAGNITUDE)

    def extra_repr(self) -> str:
        types = self.weight_table.shape[1]
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, axon_types={types}"
        )


class TeaStage(nn.Module):
    """One layer of cores: TeaLayers that read chosen features of the previous stage's output.

    ``sources[c]`` (in_features of layer c,) int64 indexes the flattened previous output (the
    flattened image C*H*W for the first stage). The stage output concatenates the layers' outputs.
    """

    def __init__(self, layers: Sequence[TeaLayer], sources: Sequence[torch.Tensor]):
        super().__init__()
        if len(layers) != len(sources) or not layers:
            raise ConfigError("a stage needs one source index tensor per layer (at least one)")
        self.layers = nn.ModuleList(layers)
        for c, (layer, src) in enumerate(zip(layers, sources, strict=True)):
            src = torch.as_tensor(src, dtype=torch.int64)
            if src.shape != (layer.in_features,):
                raise ConfigError(
                    f"layer {c}: sources must have shape ({layer.in_features},), not {tuple(src.shape)}"
                )
            self.register_buffer(f"src{c}", src)

    def sources(self) -> list[torch.Tensor]:
        return [getattr(self, f"src{c}") for c in range(len(self.layers))]

    @property
    def out_features(self) -> int:
        return sum(layer.out_features for layer in self.layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [layer(h[:, src]) for layer, src in zip(self.layers, self.sources(), strict=True)], 1
        )


class TeaNet(nn.Module):
    """Stages of TrueNorth cores and a spike-count readout.

    Input (B, C, H, W) spike probabilities in [0, 1]; output logits (B, num_classes) =
    ``class_scale`` x the mean firing probability of each class's output neurons.
    """

    def __init__(
        self,
        stages: Sequence[TeaStage],
        input_shape: tuple[int, int, int],
        num_classes: int = 10,
        class_scale: float = 10.0,
    ):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.input_shape = tuple(input_shape)
        self.num_classes = num_classes
        self.class_scale = float(class_scale)
        n_in = 1
        for d in self.input_shape:
            n_in *= d
        width = n_in
        for i, stage in enumerate(self.stages):
            for src in stage.sources():
                if src.numel() and (int(src.min()) < 0 or int(src.max()) >= width):
                    raise ConfigError(f"stage {i}: a source index is outside 0..{width - 1}")
            width = stage.out_features
        if width < num_classes:
            raise ConfigError(
                f"the last stage has {width} neurons, fewer than {num_classes} classes"
            )
        self.register_buffer("class_of", torch.arange(width) % num_classes)
        counts = torch.bincount(self.class_of, minlength=num_classes).to(torch.float32)
        self.register_buffer("class_size", counts)

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ConfigError(
                f"expected images of shape (N, {', '.join(map(str, self.input_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return x.reshape(len(x), -1)

    def spike_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Firing probabilities of the last stage, (B, out_features)."""
        h = self.check_input(x)
        for stage in self.stages:
            h = stage(h)
        return h

    def class_pool(self, out: torch.Tensor) -> torch.Tensor:
        """Mean of (B, out_features) per class -> (B, num_classes)."""
        onehot = nn.functional.one_hot(self.class_of, self.num_classes).to(out.dtype)
        return (out @ onehot) / self.class_size.to(out.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_scale * self.class_pool(self.spike_probabilities(x))

    def tea_layers(self) -> list[TeaLayer]:
        return [layer for stage in self.stages for layer in stage.layers]

    def clip_(self) -> None:
        for layer in self.tea_layers():
            layer.clip_()

    def reset_parameters(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        for layer in self.tea_layers():
            layer.reset_parameters(gen)


def patch_sources(
    image_size: int, patch: int, offsets: Sequence[tuple[int, int]], channels: int = 1
) -> list[torch.Tensor]:
    """Flat pixel indices of square patches of a (channels, size, size) image, one per offset."""
    idx = torch.arange(channels * image_size * image_size).view(channels, image_size, image_size)
    out = []
    for oy, ox in offsets:
        if not (0 <= oy and 0 <= ox and oy + patch <= image_size and ox + patch <= image_size):
            raise ConfigError(
                f"patch at ({oy}, {ox}) of size {patch} leaves the {image_size}px image"
            )
        out.append(idx[:, oy : oy + patch, ox : ox + patch].reshape(-1))
    return out


def mnist_5core(hidden_per_core: int = 64, out_neurons: int = 250, **kw) -> TeaNet:
    """The 5-core MNIST layout: four 16x16 patch cores at offsets {0, 12} x {0, 12} (256 axons,
    ``hidden_per_core`` neurons each), then one output core reading all their spikes."""
    offsets = [(0, 0), (0, 12), (12, 0), (12, 12)]
    srcs = patch_sources(28, 16, offsets)
    first = TeaStage([TeaLayer(256, hidden_per_core) for _ in srcs], srcs)
    width = 4 * hidden_per_core
    out = TeaStage([TeaLayer(width, out_neurons)], [torch.arange(width)])
    return TeaNet([first, out], (1, 28, 28), **kw)


def digits_2core(hidden: int = 256, out_neurons: int = 250, **kw) -> TeaNet:
    """Two cores for 8x8 digits: one core on all 64 pixels, one output core."""
    first = TeaStage([TeaLayer(64, hidden)], [torch.arange(64)])
    out = TeaStage([TeaLayer(hidden, out_neurons)], [torch.arange(hidden)])
    return TeaNet([first, out], (1, 8, 8), **kw)


ARCHITECTURES = {"mnist-5core": mnist_5core, "digits-2core": digits_2core}
DATASET_ARCH = {"mnist5k": "mnist-5core", "mnist": "mnist-5core", "digits": "digits-2core"}


def build(name: str, **kw) -> TeaNet:
    """A named architecture: 'mnist-5core' or 'digits-2core'."""
    if name not in ARCHITECTURES:
        raise ConfigError(
            f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name](**kw)
