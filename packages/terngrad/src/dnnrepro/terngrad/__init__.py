"""TernGrad (Wen et al., NIPS 2017): ternary gradients for data-parallel training.

- :class:`TernGradState` + :func:`terngrad_hook`: the DDP communication hook (real ternary wires);
- :class:`VirtualWorkers` / :func:`emulate`: N workers in one process, bit-identical to the hook;
- :func:`ternarize_gradients`: one worker's ternary gradients in a plain loop (removable hook).
"""

from .emulate import EmulatorConfig, VirtualWorkers, emulate
from .hook import TernGradState, terngrad_hook
from .native import TernaryGradients, ternarize_gradients
from .packing import pack_fields, pack_trits, unpack_fields, unpack_trits
from .ternarize import layer_scaler, stream_seed, ternarize
from .wire import WIRES, collective_bytes, network_bytes

__version__ = "0.1.0"

__all__ = [
    "WIRES",
    "EmulatorConfig",
    "TernGradState",
    "TernaryGradients",
    "VirtualWorkers",
    "collective_bytes",
    "emulate",
    "layer_scaler",
    "network_bytes",
    "pack_fields",
    "pack_trits",
    "stream_seed",
    "ternarize",
    "ternarize_gradients",
    "terngrad_hook",
    "unpack_fields",
    "unpack_trits",
]
