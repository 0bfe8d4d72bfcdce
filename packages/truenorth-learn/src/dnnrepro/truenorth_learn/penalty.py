"""Penalties that constrain the random variance of each sampled network copy.

The DAC'16 paper's exact regularizer is not available (its text says it "constrains the random
variance of each computation copy"; follow-up work says it biases connection probabilities
toward 0 and 1). These are the candidates (brief section 1.4), all zero at p in {0, 1}:

Synapse kinds (a function of p alone, mean over every synapse of the network):

- ``var``: s^2 p (1 - p), the variance of the sampled synapse weight (maximal at p = 1/2);
- ``l1_to_binary``: min(p, 1 - p), the distance to the nearest binary value;
- ``l2_to_binary``: min(p, 1 - p)^2.

Activation kinds (need the batch the loss was computed on; read through forward hooks, see
:meth:`VariancePenalty.attach`):

- ``neuron_var``: the variance of each neuron's integer input V = leak + sum_i b_ij x_i s_ij
  under Bernoulli synapses b_ij ~ B(p_ij) and Bernoulli input spikes x_i ~ B(x_i),
  sum_i x_i p_ij s_ij^2 (1 - x_i p_ij); mean over the batch and every neuron of the network;
- ``spike_var``: the variance y (1 - y) of each output neuron's spike, y its firing
  probability; mean over the batch and the output neurons.

The penalty is ``strength`` times that mean, so one strength means the same for networks of
different size. At p in {0, 1} with binary inputs every kind is 0 (neuron_var exactly; spike_var
because a deterministic neuron fires with probability 0 or 1).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dnnrepro.core.errors import ConfigError

from .tea import TeaLayer, TeaNet

SYNAPSE_KINDS = ("var", "l1_to_binary", "l2_to_binary")
ACTIVATION_KINDS = ("neuron_var", "spike_var")
KINDS = SYNAPSE_KINDS + ACTIVATION_KINDS


def synapse_penalty(kind: str, p: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Per-synapse penalty of connection probabilities ``p`` with integer weights ``s``."""
    if kind == "var":
        return s.to(p.dtype) ** 2 * p * (1 - p)
    d = torch.minimum(p, 1 - p)
    if kind == "l1_to_binary":
        return d
    if kind == "l2_to_binary":
        return d * d
    raise ConfigError(f"unknown synapse penalty kind {kind!r}; choose one of {SYNAPSE_KINDS}")


def neuron_input_variance(layer: TeaLayer, x: torch.Tensor) -> torch.Tensor:
    """Var V per (batch row, neuron): sum_i x_i p_ij s_ij^2 (1 - x_i p_ij), (B, out_features).

    V is the integer neuron input of one tick with sampled synapses and sampled input spikes;
    the same quantity ``TeaLayer.moments`` uses for the firing probability.
    """
    return layer.moments(x)[1]


def spike_variance(y: torch.Tensor) -> torch.Tensor:
    """Variance y (1 - y) of Bernoulli spikes with firing probabilities ``y`` (same shape)."""
    return y * (1 - y)


class VariancePenalty(nn.Module):
    """``penalty(model) -> scalar``: strength x the mean of the chosen kind (a ``fit`` penalty).

    Synapse kinds need nothing else. Activation kinds read the inputs of every TeaLayer (and the
    last stage's firing probabilities) seen in the model's latest forward pass: call
    ``handle = penalty.attach(model)`` before training and ``handle.remove()`` after
    (:func:`~dnnrepro.truenorth_learn.training.train_tea` does both).
    """

    def __init__(self, kind: str = "var", strength: float = 0.1):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(f"unknown penalty kind {kind!r}; choose one of {', '.join(KINDS)}")
        if not (isinstance(strength, int | float) and math.isfinite(strength) and strength >= 0):
            raise ConfigError(f"penalty strength must be a finite number >= 0, not {strength!r}")
        self.kind, self.strength = kind, float(strength)
        self._seen: dict[int, torch.Tensor] = {}  # id(TeaLayer) -> its latest input batch
        self._out: torch.Tensor | None = None  # latest firing probabilities of the last stage
        self._attached: int | None = None  # id of the model the hooks watch

    @property
    def needs_activations(self) -> bool:
        return self.kind in ACTIVATION_KINDS

    def attach(self, model: TeaNet) -> _Handles:
        """Watch ``model``'s forward passes (activation kinds); returns a handle with
        ``.remove()``. A no-op handle for synapse kinds."""
        if not isinstance(model, TeaNet):
            raise ConfigError(f"attach needs a TeaNet, not {type(model).__name__}")
        handles = []
        if self.needs_activations:
            for layer in model.tea_layers():
                handles.append(layer.register_forward_hook(self._layer_hook))
            handles.append(model.stages[-1].register_forward_hook(self._stage_hook))
            self._attached = id(model)
        return _Handles(handles, self)

    def _layer_hook(self, layer, inputs, output) -> None:
        self._seen[id(layer)] = inputs[0]

    def _stage_hook(self, stage, inputs, output) -> None:
        self._out = output

    def _clear(self) -> None:
        self._seen, self._out, self._attached = {}, None, None

    def forward(self, model: TeaNet | TeaLayer, x: torch.Tensor | None = None) -> torch.Tensor:
        """The penalty of ``model``; a single TeaLayer with an activation kind takes its input
        batch ``x`` (B, in_features) directly (for ``spike_var``: its firing probabilities)."""
        layers = model.tea_layers() if isinstance(model, TeaNet) else [model]
        if not self.needs_activations:
            total = sum(
                synapse_penalty(self.kind, la.p, la.synapse_weights()).sum() for la in layers
            )
            count = sum(la.p.numel() for la in layers)
            return self.strength * total / count
        if isinstance(model, TeaLayer):
            if x is None:
                raise ConfigError(f"penalty {self.kind!r} of a single layer needs its input x")
            if self.kind == "neuron_var":
                return self.strength * neuron_input_variance(model, x).mean()
            return self.strength * spike_variance(model(x)).mean()
        if self._attached != id(model) or self._out is None:
            raise ConfigError(
                f"penalty {self.kind!r} reads the model's latest forward pass: call "
                "penalty.attach(model) before training and run a forward pass first"
            )
        if self.kind == "spike_var":
            return self.strength * spike_variance(self._out).mean()
        missing = [i for i, la in enumerate(layers) if id(la) not in self._seen]
        if missing:
            raise ConfigError(f"no forward pass seen for TeaLayers {missing}; run the model first")
        var = [neuron_input_variance(la, self._seen[id(la)]) for la in layers]
        total = sum(v.sum() for v in var)
        count = sum(v.numel() for v in var)
        return self.strength * total / count

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, strength={self.strength:g}"


class _Handles:
    """What :meth:`VariancePenalty.attach` returns: ``.remove()`` detaches every hook."""

    def __init__(self, handles: list, penalty: VariancePenalty):
        self._handles, self._penalty = handles, penalty

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._penalty._clear()
