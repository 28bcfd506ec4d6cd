"""Test hosts made of Linux network namespaces: each host a namespace joined to a private bridge by a veth pair,
the test's own process on the bridge too, processes started inside hosts, links cut and restored. Everything
made (processes, namespaces, veths) is removed at close, also after a failure; names carry the pid of the
test process and a random part, so parallel runs never share one, and a run that died is cleaned up by the
next."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

PREFIX = "sltest"
_NAME = re.compile(rf"^{PREFIX}(\d+)x[0-9a-f]+-")
STOP_SECONDS = 10.0


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result


def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no `ip`, not permitted); None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (the test makes its own with `ip netns`)"
    probe = f"{PREFIX}{os.getpid()}x{secrets.token_hex(3)}-probe"
    try:
        made = _ip("netns", "add", probe, check=False)
    except (FileNotFoundError, subprocess.TimeoutExpired) as exc:
        return f"`ip netns` cannot run here: {exc}"
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def namespaces() -> list[str]:
    """The namespaces `ip netns list` shows."""
    return [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]


def pids_in(namespace: str) -> list[int]:
    result = _ip("netns", "pids", namespace, check=False)
    return [int(pid) for pid in result.stdout.split() if pid.isdigit()]


def _remove_namespace(namespace: str) -> None:
    """Kill what still runs in `namespace` (only processes the tests put there) and delete it."""
    for _ in range(3):
        pids = pids_in(namespace)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    _ip("netns", "del", namespace, check=False)


def remove_abandoned() -> None:
    """Remove the namespaces of earlier runs whose test process is gone (killed before it could clean up)."""
    for namespace in namespaces():
        match = _NAME.match(namespace)
        if match and not psutil.pid_exists(int(match.group(1))):
            logger.warning("removing an abandoned test namespace", extra={"namespace": namespace})
            _remove_namespace(namespace)


def _free_subnet() -> ipaddress.IPv4Network:
    """A random 10.x.y.0/24 that no address or route of this machine's own namespace overlaps."""
    taken = []
    for line in _ip("-4", "-o", "addr").stdout.splitlines() + _ip("-4", "route").stdout.splitlines():
        for word in line.split():
            with contextlib.suppress(ValueError):
                if "/" in word or word.count(".") == 3:
                    taken.append(ipaddress.ip_network(word, strict=False))
    for _ in range(100):
        subnet = ipaddress.ip_network(f"10.{random.randint(64, 254)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(other) for other in taken if other.prefixlen > 0):
            return subnet
    raise RuntimeError("no free 10.x.y.0/24 for the test hosts")


class Lab:
    """Hosts on one bridge (inside a hub namespace of their own); this process reaches them through a veth of
    its own namespace at `.local_address`. Use as a context manager: leaving it removes everything."""

    def __init__(self, hosts: Sequence[str]) -> None:
        remove_abandoned()
        self.tag = f"{PREFIX}{os.getpid()}x{secrets.token_hex(3)}"
        self.hub = f"{self.tag}-hub"
        self.subnet = _free_subnet()
        base = self.subnet.network_address
        self.local_address = str(base + 1)
        self.addresses = {host: str(base + 10 + n) for n, host in enumerate(hosts)}
        self.local_link = f"sl{secrets.token_hex(4)}"  # interface names: 15 characters at most
        self.made: list[str] = []
        self.scratch = tempfile.mkdtemp(prefix=f"{self.tag}-")
        os.chmod(self.scratch, 0o755)  # noqa: S103  # servers run as another user (PostgreSQL) keep files here
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespace(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def _add_namespace(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def _build(self) -> None:
        prefix = self.subnet.prefixlen
        self._add_namespace(self.hub)
        _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.hub, "link", "set", "br0", "up")
        _ip("link", "add", self.local_link, "type", "veth", "peer", "name", "v-local", "netns", self.hub)
        _ip("-n", self.hub, "link", "set", "v-local", "master", "br0", "up")
        _ip("addr", "add", f"{self.local_address}/{prefix}", "dev", self.local_link)
        _ip("link", "set", self.local_link, "up")
        for n, (host, address) in enumerate(self.addresses.items()):
            namespace = self.namespace(host)
            self._add_namespace(namespace)
            hub_end = f"v-{n}"
            _ip(
                "-n",
                self.hub,
                "link",
                "add",
                hub_end,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            _ip("-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
            _ip("-n", namespace, "addr", "add", f"{address}/{prefix}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")

    def _hub_end(self, host: str) -> str:
        return f"v-{list(self.addresses).index(host)}"

    def cut(self, host: str) -> None:
        """Take `host`'s link down at the bridge: what it sends and what is sent to it is lost, silently."""
        _ip("-n", self.hub, "link", "set", self._hub_end(host), "down")

    def restore(self, host: str) -> None:
        _ip("-n", self.hub, "link", "set", self._hub_end(host), "up")

    def start(
        self,
        host: str,
        command: Sequence[str],
        *,
        env: dict[str, str],
        log: Path,
        user: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Run `command` inside `host` (as `user` when given), its output appended to `log`; stopped at close."""
        argv = ["ip", "netns", "exec", self.namespace(host)]
        if user is not None:
            argv += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*argv, *command], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.processes.append(proc)
        return proc

    def run(self, host: str, command: Sequence[str], *, user: str | None = None, **kwargs: Any) -> str:
        """Run `command` inside `host` to its end; its output (a failure raises with it)."""
        argv = ["ip", "netns", "exec", self.namespace(host)]
        if user is not None:
            argv += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        result = subprocess.run([*argv, *command], capture_output=True, text=True, timeout=120, **kwargs)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed in {host}: {result.stdout}{result.stderr}")
        return result.stdout

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = STOP_SECONDS) -> None:
        """SIGTERM `proc`'s process group (the process and what it forked), SIGKILL after `timeout`."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)

    def close(self) -> None:
        """Stop every process started here, then delete the namespaces and this process's veth."""
        for proc in self.processes:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes:
            self.stop(proc, timeout=0)
        for namespace in reversed(self.made):
            _remove_namespace(namespace)
        self.made.clear()
        _ip("link", "del", self.local_link, check=False)  # gone with its peer already, unless the hub failed
        shutil.rmtree(self.scratch, ignore_errors=True)


def tail(path: Path, chars: int = 4000) -> str:
    """The end of a log file, for a failure's message."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - chars))
            return fh.read().decode(errors="replace")
    except OSError as exc:
        return f"({exc})"


__all__ = ["Lab", "namespaces", "pids_in", "remove_abandoned", "tail", "unavailable"]
