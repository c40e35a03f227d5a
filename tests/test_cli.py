"""The command line: `serve` runs until SIGTERM and exits cleanly; config errors exit 2."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway.cli import main


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_health_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "GEMINI_GATEWAY_CACHE_DIR": str(tmp_path),
        "GEMINI_GATEWAY_UPSTREAM": "http://127.0.0.1:9",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/_gateway/healthz", timeout=1
                ) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "gateway did not start"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    started = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["event"] == "starting" for line in started)
    assert (tmp_path / "gateway-secret").exists()


def test_check_config_masks_secrets(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "g.toml"
    config.write_text('[admin]\ntoken = "a-very-long-admin-token"\n[upstream]\napi_key = "AIzaX"\n')
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "a-very-long-admin-token" not in out and "AIzaX" not in out
    assert json.loads(out)["admin"]["token"] == "***"


def test_bad_config_exits_2_naming_the_key(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "g.toml"
    config.write_text("[lanes]\nper_lane_concurrency = 0\n")
    assert main(["serve", "--config", str(config)]) == 2
    assert "lanes.per_lane_concurrency" in capsys.readouterr().err


def test_sigterm_during_a_long_call_exits_within_the_grace(tmp_path: Path) -> None:
    import threading

    from tests.emulator.bodies import KEY_HEADERS, generate_body
    from tests.harness import threaded_stack

    with threaded_stack() as stack:
        port = free_port()
        env = {
            **os.environ,
            "GEMINI_GATEWAY_CACHE_DIR": str(tmp_path),
            "GEMINI_GATEWAY_UPSTREAM": stack.emulator.url,
            "GEMINI_GATEWAY_SERVER_SHUTDOWN_TIMEOUT_SECONDS": "1",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_gateway/healthz", timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline
                    time.sleep(0.1)
            slow = urllib.request.Request(
                f"{url}/v1beta/models/gemini-2.5-flash:generateContent",
                data=generate_body("slow"),
                headers={**KEY_HEADERS, "x-emulator-latency": "10"},
            )
            caller = threading.Thread(
                target=lambda: _ignore_errors(lambda: urllib.request.urlopen(slow, timeout=30)),
                daemon=True,
            )
            caller.start()
            time.sleep(0.5)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            assert time.monotonic() - started < 4
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _ignore_errors(fn) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(OSError):
        fn()
