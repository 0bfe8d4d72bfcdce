"""A slow network on one Linux machine: N network namespaces on a bridge, links shaped with tc.

    with SlowNetwork(workers=2, rate_mbit=100) as net:
        net.addresses[0], net.interfaces[0], net.exec_prefix(0)   # "10.231.x.1", "tgnb..0a", [...]

Layout (everything lives in namespaces this object creates; nothing touches the host's interfaces
or addresses): a hub namespace holding a bridge, and per worker i a namespace with one end of a
veth pair (address 10.231.<k>.<i+1>/24, k random per network); the other end is a bridge port in
the hub. Each direction of each link goes through a token bucket (tbf) of ``rate_mbit``: the
worker's egress (upload) and the hub port's egress towards the worker (download); ``delay_ms``
adds a netem delay in front of each bucket. Teardown deletes the namespaces (which removes the
veths, the bridge and the qdiscs with them); it runs on exit from the ``with`` block, on error, on
SIGTERM/SIGINT and at interpreter exit, and is idempotent.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import subprocess

from dnnrepro.core.errors import ConfigError, DnnreproError

PREFIX = "tgnb"


def check_privileges() -> None:
    """Raise ConfigError unless we are root with ``ip`` and ``tc`` on PATH."""
    if os.geteuid() != 0:
        raise ConfigError("the slow-network benchmark needs root (network namespaces and tc)")
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(f"the slow-network benchmark needs {' and '.join(missing)} (iproute2)")


def _run(*cmd: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if proc.returncode:
        raise DnnreproError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def namespaces(prefix: str = PREFIX) -> list[str]:
    """Network namespaces whose name starts with ``prefix`` (what a teardown must leave empty)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return [line.split()[0] for line in out.stdout.splitlines() if line.startswith(prefix)]


class SlowNetwork:
    """N namespaces joined by a bridge; every link limited to ``rate_mbit`` each way."""

    def __init__(self, workers: int, rate_mbit: float, delay_ms: float = 0.0):
        if not isinstance(workers, int) or not 1 <= workers <= 64:
            raise ConfigError(f"workers must be an integer in 1..64, not {workers!r}")
        if not rate_mbit > 0 or delay_ms < 0:
            raise ConfigError("rate_mbit must be > 0 and delay_ms >= 0")
        self.workers, self.rate_mbit, self.delay_ms = workers, float(rate_mbit), float(delay_ms)
        tag = f"{random.randrange(16**4):04x}"
        self.k = random.randrange(1, 250)
        self.hub = f"{PREFIX}{tag}h"
        self.names = [f"{PREFIX}{tag}w{i}" for i in range(workers)]
        self.interfaces = [f"{PREFIX}{tag}{i}a" for i in range(workers)]  # worker side
        self.ports = [f"{PREFIX}{tag}{i}b" for i in range(workers)]  # hub side
        self.addresses = [f"10.231.{self.k}.{i + 1}" for i in range(workers)]
        self._created: list[str] = []
        self._old_handlers: dict = {}

    def exec_prefix(self, i: int) -> list[str]:
        """Command prefix that runs a program inside worker ``i``'s namespace."""
        return ["ip", "netns", "exec", self.names[i]]

    def _shape(self, ns: str, dev: str) -> None:
        rate = f"{self.rate_mbit}mbit"
        burst = max(4096, int(self.rate_mbit * 1e6 / 8 / 250))  # about 4 ms of traffic
        parent = ["root"]
        if self.delay_ms:
            cmd = ["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "handle", "1:", "netem",
                   "delay", f"{self.delay_ms}ms", "limit", "100000"]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            if proc.returncode:
                raise ConfigError(
                    f"tc netem is not available here ({proc.stderr.strip()}); "
                    "load the sch_netem kernel module or run without a delay"
                )
            parent = ["parent", "1:1"]
        _run("tc", "-n", ns, "qdisc", "add", "dev", dev, *parent, "handle", "10:", "tbf",
             "rate", rate, "burst", str(burst), "latency", "200ms")  # fmt: skip

    def __enter__(self) -> SlowNetwork:
        check_privileges()
        atexit.register(self.teardown)
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old_handlers[sig] = signal.signal(sig, self._on_signal)
        try:
            _run("ip", "netns", "add", self.hub)
            self._created.append(self.hub)
            _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", self.hub, "link", "set", "br0", "up")
            for i in range(self.workers):
                ns, a, b = self.names[i], self.interfaces[i], self.ports[i]
                _run("ip", "netns", "add", ns)
                self._created.append(ns)
                _run("ip", "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b,
                     "netns", self.hub)  # fmt: skip
                _run("ip", "-n", self.hub, "link", "set", b, "master", "br0")
                _run("ip", "-n", self.hub, "link", "set", b, "up")
                _run("ip", "-n", ns, "addr", "add", f"{self.addresses[i]}/24", "dev", a)
                _run("ip", "-n", ns, "link", "set", a, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                self._shape(ns, a)
                self._shape(self.hub, b)
        except BaseException:
            self.teardown()
            raise
        return self

    def _on_signal(self, signum, frame):
        self.teardown()
        raise KeyboardInterrupt(f"signal {signum}")

    def teardown(self) -> None:
        """Delete every namespace this network created (idempotent)."""
        while self._created:
            subprocess.run(
                ["ip", "netns", "del", self._created.pop()], capture_output=True, timeout=30
            )
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        self._old_handlers = {}

    def __exit__(self, *exc) -> None:
        self.teardown()

    def qdiscs(self) -> list[str]:
        """tc qdisc lines of every created namespace (for checks)."""
        lines = []
        for ns in self._created:
            out = subprocess.run(
                ["tc", "-n", ns, "qdisc", "show"], capture_output=True, text=True, timeout=30
            )
            lines += [f"{ns}: {line}" for line in out.stdout.splitlines()]
        return lines
