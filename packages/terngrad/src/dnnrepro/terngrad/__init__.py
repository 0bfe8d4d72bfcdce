"""TernGrad (Wen et al., NIPS 2017): ternary gradients for data-parallel training.

- :func:`register` (one line) or :class:`TernGradState` + :func:`terngrad_hook`: the DDP
  communication hook (real ternary wires, asynchronous);
- :class:`VirtualWorkers` / :func:`emulate_stacked` (vectorized) / :func:`emulate` (reference): N
  workers in one process, bit-identical to the hook;
- :func:`ternarize_gradients`: one worker's ternary gradients in a plain loop (removable hook).
"""

from .emulate import EmulatorConfig, VirtualWorkers, emulate, emulate_stacked
from .hook import TernGradState, register, terngrad_hook
from .native import TernaryGradients, ternarize_gradients
from .packing import pack_fields, pack_trits, unpack_fields, unpack_trits
from .ternarize import layer_scaler, stream_seed, ternarize
from .wire import (
    DEFAULT_CODEC,
    DEFAULT_WIRE,
    WIRE_CHOICES,
    WIRES,
    collective_bytes,
    network_bytes,
    resolve_wire,
    wire_bytes_per_element,
)

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_CODEC",
    "DEFAULT_WIRE",
    "WIRES",
    "WIRE_CHOICES",
    "EmulatorConfig",
    "TernGradState",
    "TernaryGradients",
    "VirtualWorkers",
    "collective_bytes",
    "emulate",
    "emulate_stacked",
    "layer_scaler",
    "network_bytes",
    "pack_fields",
    "pack_trits",
    "register",
    "resolve_wire",
    "stream_seed",
    "ternarize",
    "ternarize_gradients",
    "terngrad_hook",
    "unpack_fields",
    "unpack_trits",
    "wire_bytes_per_element",
]
