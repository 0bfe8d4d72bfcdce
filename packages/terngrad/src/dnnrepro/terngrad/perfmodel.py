"""A scalability model of synchronous data-parallel SGD with fp32 ring allreduce vs TernGrad.

The paper's Fig. 5 plots modelled throughput of AlexNet, GoogLeNet and VGG-A on 1..512 GPUs of two
128-node clusters (4 GPUs a node): (a) 1 Gb/s Ethernet with GTX 1080s, (b) 100 Gb/s InfiniBand with
P100s. Its exact formula is not published; this is our own, stated in full:

    T(N) = T_comp + T_comm(N) + T_codec,      throughput(N) = N * batch / T(N)

- T_comp = batch / (images per second of one GPU) (assumed rates, table ``NETWORKS``);
- T_comm = bytes one rank sends / bandwidth + latency * messages, the bytes from the same
  :func:`~dnnrepro.terngrad.wire.collective_bytes` formula the hook counts (one bucket holding the
  whole model), fp32 as a ring allreduce of 4-byte floats;
- bandwidth: inside a node (N <= gpus_per_node) the intra-node link; beyond, the node's network
  link shared by its GPUs (bandwidth / gpus_per_node), for fp32 and TernGrad alike;
- latency: ring allreduce 2(N-1) messages, all_to_all and ring all_gather N-1 each;
- T_codec = elements / codec rate (ternarize + pack + unpack on the GPU; only TernGrad).

The GPU rates, link latencies and codec rate are assumptions (not the paper's); the parameter
counts are the commonly cited ones. ``speedup(N)`` = TernGrad throughput / fp32 throughput.
"""

from __future__ import annotations

from dataclasses import dataclass

from dnnrepro.core.errors import ConfigError

from .wire import COLLECTIVE_KIND, collective_bytes, network_bytes


@dataclass(frozen=True)
class Network:
    """A DNN: parameters, layers (tensors), per-GPU batch, images/s of one GTX 1080 (fwd+bwd)."""

    params: float
    layers: int
    batch: int
    images_per_s_1080: float
    fc_share: float  # fraction of parameters in fully connected layers (for the trend's story)


@dataclass(frozen=True)
class Cluster:
    """Per-GPU compute speed (relative to a GTX 1080), links in Gbit/s, per-message latency in s."""

    gpu_speed: float
    intra_gbps: float
    inter_gbps: float
    latency_s: float
    gpus_per_node: int = 4
    codec_elements_per_s: float = 2e10


NETWORKS = {
    # params and per-GPU batches as in Fig. 5; images/s are our assumptions for a GTX 1080
    "alexnet": Network(61e6, 16, 128, 1500.0, 0.96),
    "googlenet": Network(7e6, 116, 64, 400.0, 0.15),
    "vgg-a": Network(133e6, 22, 32, 180.0, 0.93),
}
CLUSTERS = {
    # (a) GTX 1080, PCIe switch inside a node (~64 Gbit/s), 1 Gbit/s Ethernet between nodes
    "ethernet-1g": Cluster(1.0, 64.0, 1.0, 50e-6),
    # (b) P100 (~1.6x a 1080), NVLink inside a node (~160 Gbit/s), 100 Gbit/s InfiniBand
    "infiniband-100g": Cluster(1.6, 160.0, 100.0, 5e-6),
}


def _messages(handed: dict[str, int], workers: int) -> int:
    per_kind = {
        "allreduce": 2 * (workers - 1),
        "all_to_all": workers - 1,
        "all_gather": workers - 1,
    }
    return sum(per_kind[COLLECTIVE_KIND[name]] for name in handed)


def step_time(
    network: str | Network,
    cluster: str | Cluster,
    workers: int,
    method: str = "terngrad",
    wire: str = "a2a",
    codec: str = "base3",
) -> dict[str, float]:
    """Seconds of one synchronous step: {'compute', 'comm', 'codec', 'total', 'bytes_sent'}."""
    net = NETWORKS[network] if isinstance(network, str) else network
    cl = CLUSTERS[cluster] if isinstance(cluster, str) else cluster
    if not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be an integer >= 1, not {workers!r}")
    if method not in ("fp32", "terngrad"):
        raise ConfigError(f"method must be 'fp32' or 'terngrad', not {method!r}")
    compute = net.batch / (net.images_per_s_1080 * cl.gpu_speed)
    gbps = cl.intra_gbps if workers <= cl.gpus_per_node else cl.inter_gbps / cl.gpus_per_node
    numel = int(net.params)
    if workers == 1:
        handed: dict[str, int] = {}
    elif method == "fp32":
        handed = {"float_allreduce": 4 * numel}
    else:
        handed = collective_bytes(wire, codec, numel, workers, net.layers)
    sent = network_bytes(handed, workers) if workers > 1 else 0.0
    comm = sent * 8 / (gbps * 1e9) + _messages(handed, workers) * cl.latency_s
    codec_s = 0.0 if method == "fp32" or workers == 1 else numel / cl.codec_elements_per_s
    return {
        "compute": compute,
        "comm": comm,
        "codec": codec_s,
        "total": compute + comm + codec_s,
        "bytes_sent": sent,
    }


def throughput(network: str, cluster: str, workers: int, method: str = "terngrad", **kw) -> float:
    """Images per second of the whole job."""
    t = step_time(network, cluster, workers, method, **kw)
    net = NETWORKS[network] if isinstance(network, str) else network
    return workers * net.batch / t["total"]


def speedup(network: str, cluster: str, workers: int, **kw) -> float:
    """TernGrad throughput / fp32 throughput at the same number of GPUs."""
    return throughput(network, cluster, workers, "terngrad", **kw) / throughput(
        network, cluster, workers, "fp32"
    )


GPU_COUNTS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def sweep(wire: str = "a2a", codec: str = "base3") -> dict:
    """Throughput (fp32, TernGrad) and speedup for every network, cluster and GPU count."""
    out: dict = {}
    for net in NETWORKS:
        for cl in CLUSTERS:
            rows = []
            for n in GPU_COUNTS:
                fp = throughput(net, cl, n, "fp32")
                tg = throughput(net, cl, n, "terngrad", wire=wire, codec=codec)
                rows.append({"gpus": n, "fp32": fp, "terngrad": tg, "speedup": tg / fp})
            out[f"{net}/{cl}"] = rows
    return out
