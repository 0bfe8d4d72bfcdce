"""TernGrad (Wen et al., NIPS 2017): ternary gradients for data-parallel training.

from dnnrepro.terngrad import TernGradState, terngrad_hook
state = TernGradState(process_group=None, clip_c=2.5, model=model)
ddp_model.register_comm_hook(state, terngrad_hook)
"""

from .emulate import EmulatorConfig, VirtualWorkers, emulate
from .hook import TernGradState, terngrad_hook
from .packing import pack_fields, pack_trits, unpack_fields, unpack_trits
from .ternarize import layer_scaler, stream_seed, ternarize
from .wire import WIRES, collective_bytes, network_bytes

__version__ = "0.1.0"

__all__ = [
    "WIRES",
    "EmulatorConfig",
    "TernGradState",
    "VirtualWorkers",
    "collective_bytes",
    "emulate",
    "layer_scaler",
    "network_bytes",
    "pack_fields",
    "pack_trits",
    "stream_seed",
    "ternarize",
    "terngrad_hook",
    "unpack_fields",
    "unpack_trits",
]
