"""The TrueNorth limits this package enforces (Merolla et al. 2014; Cassidy et al. 2013).

One neurosynaptic core has 256 input axons, 256 neurons and a 256x256 binary crossbar. Each axon
has one of 4 axon types; each neuron holds one signed integer weight per axon type, so a neuron
sees at most 4 distinct weight values. A neuron sends its spike to exactly one (core, axon). The
leak is a signed integer; we keep weights and leak within the 9-bit signed range [-255, 255]
(sign plus 8-bit magnitude, as in the pytruenorth parameter set).

Neuron model used throughout (the memoryless configuration of Esser et al. 2015): every tick the
membrane potential starts at 0, integrates leak + sum of the weights of its active synapses that
received a spike, and the neuron spikes iff the potential reaches the threshold ``THRESHOLD`` = 1.
"""

from __future__ import annotations

AXONS_PER_CORE = 256
NEURONS_PER_CORE = 256
MAX_AXON_TYPES = 4
MAX_MAGNITUDE = 255  # |weight| and |leak| on the chip: sign + 8-bit magnitude
THRESHOLD = 1  # integer potential >= 1 fires (alpha = 1, reset to 0 each tick)
TOTAL_CORES = 4096  # one TrueNorth chip (64 x 64 mesh)
