"""A private ``redis-server`` on a free loopback port: for the demo, the tests and the bench.

Never used by the store itself: production code connects to a Redis it is given. This starts
Debian's (or any) ``redis-server`` binary with no persistence, bound to 127.0.0.1 only, and can
kill and restart it on the same port (the fault tests use that).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Final

from egress.errors import ConfigurationError

__all__ = ["LocalRedisServer", "free_port", "redis_server_binary"]

_START_TIMEOUT: Final = 10.0


def redis_server_binary() -> str | None:
    """The path of ``redis-server`` on this machine, or None."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class LocalRedisServer:
    """One ``redis-server`` process; ``start()``, ``kill()``, ``restart()``, ``stop()``."""

    def __init__(self, port: int | None = None, *, args: tuple[str, ...] = (),
                 config: str | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise ConfigurationError(
                "redis-server is not installed (Debian: apt-get install redis-server); "
                "give a Redis URL instead")
        self.binary = binary
        self.port = port or free_port()
        self.args = args  # more redis-server options, e.g. ("--cluster-enabled", "yes")
        self._dir = tempfile.mkdtemp(prefix="egress-redis-")
        # A config file's text (a sentinel needs one it can rewrite); it goes first on the line.
        self._config: list[str] = []
        if config is not None:
            path = os.path.join(self._dir, "redis.conf")
            with open(path, "w", encoding="utf-8") as file:
                file.write(config)
            self._config = [path]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        return f"LocalRedisServer({self.url!r}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> LocalRedisServer:
        if self.running:
            return self
        log = open(os.path.join(self._dir, "redis.log"), "wb")  # noqa: SIM115 (kept by Popen)
        self._process = subprocess.Popen(  # noqa: S603 (a fixed binary, fixed arguments)
            [self.binary, *self._config, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self._dir, "--protected-mode", "yes",
             *self.args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not _answers_ping(self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise ConfigurationError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)
        return self

    def kill(self) -> None:
        """Stop it abruptly (SIGKILL), as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections stay open, nothing answers; a slow Redis."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        self.resume()
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> LocalRedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
