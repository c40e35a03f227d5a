"""Child processes on free loopback ports: the emulator, gateways and nginx.

Every process is started through `Procs`, which stops all of them (SIGTERM, then SIGKILL
after a grace period) when its `with` block ends, whatever the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
API_KEY = "test-key"
START_TIMEOUT = 30.0
STOP_GRACE = 5.0

# The emulator stands in for Google: it must be fast and steady, not a source of noise.
# With glibc's default (dynamic) mmap threshold its cost per 20 MB request flips between
# ~45 ms and ~95 ms depending on heap history (12k page faults per request in the slow
# state). A fixed high threshold keeps large buffers on a heap that is reused.
EMULATOR_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
}

# `gemini-gateway serve`, with uvloop hidden when the asyncio loop is asked for.
_GATEWAY_MAIN = (
    "import sys\n"
    "if sys.argv[1] == 'asyncio':\n"
    "    sys.modules['uvloop'] = None  # makes `import uvloop` fail, so serve uses asyncio\n"
    "from gateway.cli import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Procs:
    """Starts children in a work directory; stops every one of them on exit."""

    def __init__(self, work: Path, *, loop: str = "default", log_level: str = "info") -> None:
        self.work = work
        self.loop = loop
        self.log_level = log_level
        self.gateway_env: dict[str, str] = {}
        self._procs: list[Proc] = []

    def __enter__(self) -> Procs:
        self.work.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.popen.poll() is None:
                proc.popen.terminate()
        deadline = time.monotonic() + STOP_GRACE
        for proc in procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.popen.kill()
                proc.popen.wait()

    def stop(self, proc: Proc) -> None:
        if proc in self._procs:
            self._procs.remove(proc)
        proc.popen.terminate()
        try:
            proc.popen.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            proc.popen.wait()

    def _spawn(
        self, name: str, argv: Sequence[str], url: str, ready: str, env: Mapping[str, str]
    ) -> Proc:
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                list(argv), cwd=ROOT, env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )
        proc = Proc(name, popen, url, log)
        self._procs.append(proc)
        _wait_ready(proc, url + ready)
        return proc

    def emulator(self, name: str, *, answer_image_bytes: int = 0, stream_events: int = 5) -> Proc:
        port = free_port()
        argv = [sys.executable, "-m", "tests.emulator", "--host", HOST, "--port", str(port)]
        argv += ["--latency", "0", "--stream-events", str(stream_events)]
        argv += ["--answer-image-bytes", str(answer_image_bytes)]
        url = f"http://{HOST}:{port}"
        env = _clean_env()
        env.update(EMULATOR_MALLOC)
        return self._spawn(name, argv, url, f"/v1beta/models?key={API_KEY}", env)

    def gateway(self, name: str, upstream: Proc, *, cache: str = "off") -> Proc:
        port = free_port()
        env = _clean_env()
        env.update(
            GEMINI_GATEWAY_UPSTREAM=upstream.url,
            GEMINI_GATEWAY_CACHE_BACKEND=cache,
            GEMINI_GATEWAY_CACHE_DIR=str(self.work / f"{name}-cache"),
            GEMINI_GATEWAY_SERVER_LOG_LEVEL=self.log_level,
        )
        env.update(self.gateway_env)
        argv = [sys.executable, "-c", _GATEWAY_MAIN, self.loop, "serve"]
        argv += ["--host", HOST, "--port", str(port)]
        url = f"http://{HOST}:{port}"
        return self._spawn(name, argv, url, "/_gateway/readyz", env)

    def nginx(self, name: str, root: Path, file: str) -> Proc:
        """nginx with one worker (the gateway is one process too), serving `root`."""
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        prefix = self.work / name
        prefix.mkdir(parents=True, exist_ok=True)
        for path in (self.work, prefix, root):
            path.chmod(0o755)  # workers may run as `nobody`
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(prefix=prefix, port=port, host=HOST, root=root))
        argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        argv += ["-g", "daemon off;"]
        url = f"http://{HOST}:{port}"
        return self._spawn(name, argv, url, "/" + file, _clean_env())


_NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    types {{ application/json json; }}
    default_type application/json;
    server {{
        listen {host}:{port};
        root {root};
    }}
}}
"""


def _clean_env() -> dict[str, str]:
    """This environment without the caller's gateway settings, which would skew a run."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GEMINI_GATEWAY_")}


def _wait_ready(proc: Proc, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} not ready after {START_TIMEOUT:.0f} s:\n{proc.tail()}")
