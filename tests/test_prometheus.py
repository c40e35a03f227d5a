"""The dashboard against the real thing: a Prometheus process scraping a live gateway.

A gateway (+ emulator) runs on loopback, `prometheus` runs as a subprocess scraping it
every second, known traffic goes through in two rounds (so every counter has moved
between scrapes and every `rate()` has two samples), and then EVERY PromQL expression in
`dashboards/gemini-gateway.json` is evaluated by Prometheus: each must parse and return
data. `promtool` checks the shipped `config/prometheus.yml`.

Without the binaries the tests skip, except under CI (`CI=true`), where that is a failure
(`.ci/run` installs them with apt-get).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from gateway.config import MetricsSettings
from gateway.metrics import Metrics
from tests.emulator.bodies import KEY_HEADERS, generate_body, reference_png
from tests.harness import Stack, fetch, gateway_stack

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboards" / "gemini-gateway.json"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus.yml"
MONITORING_DOC = ROOT / "README.md"
FLASH = "gemini-2.5-flash"
NB2 = "gemini-3.1-flash-image-preview"
WINDOW = "30s"  # what $__rate_interval / $__interval / $__range become in the test
SCRAPE_TIMEOUT = 30.0
IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(binary: str) -> str:
    """The binary's path; a skip when it is missing, but a failure under CI."""
    path = shutil.which(binary)
    if path is None:
        message = f"`{binary}` is not on PATH (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(f"{message}; CI must prove the dashboard against a real Prometheus")
        pytest.skip(message)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the dashboard file ---------------------------------------------------------------


def load_dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_exprs(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every target of every panel, rows included."""
    return [
        (panel["title"], target["expr"])
        for panel in all_panels(doc["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def variable(doc: dict[str, Any], name: str) -> dict[str, Any]:
    found = [v for v in doc["templating"]["list"] if v["name"] == name]
    assert len(found) == 1, f"dashboard variable {name} missing"
    return found[0]


def substitute(expr: str, doc: dict[str, Any]) -> str:
    """Replace Grafana variables the way Grafana would for "All" and a 30 s window."""
    values = {
        "__rate_interval": WINDOW,
        "__interval": WINDOW,
        "__range": WINDOW,
        "model": variable(doc, "model")["allValue"],
    }

    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        assert name in values, f"unknown dashboard variable ${name} in {expr}"
        return values[name]

    out = re.sub(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\$(?P<bare>\w+)", replace, expr)
    assert "$" not in out
    return out


def test_dashboard_is_importable_and_uses_variables_for_datasource_and_model() -> None:
    doc = load_dashboard()
    assert "__inputs" not in doc and "__requires" not in doc
    assert doc["schemaVersion"] >= 36 and doc["uid"] == "gemini-gateway" and doc["id"] is None
    datasource = variable(doc, "datasource")
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    model = variable(doc, "model")
    assert model["type"] == "query" and model["multi"] and model["includeAll"]
    assert model["definition"] == "label_values(gemini_gateway_requests_total, model)"
    assert model["query"]["query"] == model["definition"] and model["allValue"] == ".*"
    ref = {"type": "prometheus", "uid": "${datasource}"}
    assert model["datasource"] == ref
    panels = [p for p in all_panels(doc["panels"]) if p["type"] != "row"]
    ids = [p["id"] for p in all_panels(doc["panels"])]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"] == ref, panel["title"]
        assert panel["targets"] and all(t["datasource"] == ref for t in panel["targets"])
        assert panel.get("description"), f"{panel['title']} needs a one-line description"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    titles = {p["title"] for p in panels}
    wanted = {
        "Request rate by status",
        "Error ratio",
        "Request latency p50 / p95 / p99",
        "Cache hit ratio",
        "Bytes saved by the cache",
        "Queue depth",
        "Queue wait p95",
        "Busy lanes",
        "Queue rejections by reason",
        "Upstream errors by kind",
        "Upstream time to first byte",
        "In-flight requests",
    }
    assert wanted <= titles, wanted - titles
    doc_text = MONITORING_DOC.read_text()
    for title in titles:
        assert f"**{title}**" in doc_text, (
            f"README's Monitoring section does not describe {title!r}"
        )


def test_dashboard_uses_every_gateway_metric_and_only_those() -> None:
    registry = CollectorRegistry()
    Metrics(MetricsSettings().models, registry)
    families = {family.name for family in registry.collect()}
    text = json.dumps(load_dashboard())
    used = set(re.findall(r"gemini_gateway_[a-z_]+", text))
    suffixes = ("_total", "_bucket", "_info")
    stems = {next((u.removesuffix(s) for s in suffixes if u.endswith(s)), u) for u in used}
    assert families - stems == set(), "metrics the dashboard does not show"
    assert stems - families == set(), "dashboard names that the gateway does not export"


def test_provisioning_points_grafana_at_the_dashboard_and_prometheus() -> None:
    provisioning = ROOT / "dashboards" / "provisioning"
    dashboards = (provisioning / "dashboards" / "gemini-gateway.yml").read_text()
    assert "apiVersion: 1" in dashboards and "type: file" in dashboards
    assert "path: /var/lib/grafana/dashboards/gemini-gateway" in dashboards
    datasources = (provisioning / "datasources" / "prometheus.yml").read_text()
    assert "type: prometheus" in datasources and "apiVersion: 1" in datasources
    config = PROMETHEUS_CONFIG.read_text()
    assert "job_name: gemini-gateway" in config and "metrics_path: /metrics" in config
    assert '"127.0.0.1:8080"' in config


def test_promtool_accepts_the_shipped_prometheus_config() -> None:
    promtool = require("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


# --- a real Prometheus ----------------------------------------------------------------


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def prometheus_runner() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes started by a test; all of them are stopped at its end, whatever happens."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def start_prometheus(
    binary: str, started: list[subprocess.Popen[bytes]], tmp_path: Path, target: str
) -> Prometheus:
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: gemini-gateway\n"
        "    metrics_path: /metrics\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        "    static_configs:\n"
        f'      - targets: ["{target}"]\n'
    )
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    started.append(process)
    return Prometheus(f"http://127.0.0.1:{port}", process, log)


async def wait_ready(session: aiohttp.ClientSession, prom: Prometheus) -> None:
    deadline = time.monotonic() + SCRAPE_TIMEOUT
    while time.monotonic() < deadline:
        if prom.process.poll() is not None:
            pytest.fail(f"prometheus exited with {prom.process.returncode}:\n{prom.output()}")
        try:
            async with session.get(f"{prom.url}/-/ready") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail(f"prometheus not ready after {SCRAPE_TIMEOUT}s:\n{prom.output()}")


async def query(session: aiohttp.ClientSession, prom: Prometheus, expr: str) -> list[Any]:
    async with session.get(f"{prom.url}/api/v1/query", params={"query": expr}) as resp:
        body = await resp.json()
    assert body.get("status") == "success", f"{expr}\n{body}"
    result: list[Any] = body["data"]["result"]
    return result


async def scalar(session: aiohttp.ClientSession, prom: Prometheus, expr: str) -> float | None:
    result = await query(session, prom, expr)
    return float(result[0]["value"][1]) if result else None


async def wait_scraped(
    session: aiohttp.ClientSession, prom: Prometheus, expr: str, expected: float
) -> None:
    """Until Prometheus has scraped a value of `expr` equal to what the traffic made."""
    deadline = time.monotonic() + SCRAPE_TIMEOUT
    seen: float | None = None
    while time.monotonic() < deadline:
        seen = await scalar(session, prom, expr)
        if seen == expected:
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"{expr} = {seen}, expected {expected} within {SCRAPE_TIMEOUT}s\n{prom.output()}")


async def post(
    session: aiohttp.ClientSession,
    stack: Stack,
    prompt: str,
    *images: bytes,
    model: str = FLASH,
    stream: bool = False,
    headers: dict[str, str] | None = None,
) -> int:
    action = "streamGenerateContent?alt=sse" if stream else "generateContent"
    answer = await fetch(
        f"{stack.url}/v1beta/models/{model}:{action}",
        generate_body(prompt, *images),
        headers={**KEY_HEADERS, **(headers or {})},
        session=session,
    )
    return answer.status


async def drive(session: aiohttp.ClientSession, stack: Stack, round_: int) -> list[int]:
    """One round of known traffic touching every panel; returns the statuses."""
    slow = {"x-emulator-latency": "0.2"}
    statuses = []
    for _ in range(2):  # two misses, then the same two as hits
        statuses += [await post(session, stack, f"r{round_} prompt {i}") for i in range(2)]
    # One miss and one coalesced (max_waiting_per_lane=1 bounds cache-key lanes too).
    statuses += await asyncio.gather(
        *(post(session, stack, f"r{round_} burst", headers=slow) for _ in range(2))
    )
    image = reference_png(f"character {round_}")
    statuses += await asyncio.gather(  # two queued on one image; the third is lane_full
        *(
            post(session, stack, f"r{round_} pose {i}", image, model=NB2, headers=slow)
            for i in range(3)
        )
    )
    statuses.append(
        await post(session, stack, f"r{round_} boom", headers={"x-emulator-error": "500"})
    )
    statuses.append(await post(session, stack, f"r{round_} story", stream=True, headers=slow))
    return statuses


async def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    prometheus_runner: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    binary = require("prometheus")
    doc = load_dashboard()
    exprs = dashboard_exprs(doc)
    assert len(exprs) >= 20
    async with gateway_stack(lanes={"max_waiting_per_lane": 1}) as stack:
        target = stack.url.removeprefix("http://")
        prom = start_prometheus(binary, prometheus_runner, tmp_path, target)
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, prom)
            total = 0
            for round_ in range(2):  # two rounds: every counter moves between scrapes
                statuses = await drive(session, stack, round_)
                assert sorted(statuses) == [200] * 9 + [429, 500]
                total += len(statuses)
                await wait_scraped(session, prom, "sum(gemini_gateway_requests_total)", total)

            up = await scalar(session, prom, 'up{job="gemini-gateway"}')
            assert up == 1
            models = await label_values(session, prom)
            assert {FLASH, NB2} <= set(models)
            empty = []
            for title, expr in exprs:
                if not await query(session, prom, substitute(expr, doc)):
                    empty.append(f"{title}: {expr}")
            assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
            for name in sorted(set(re.findall(r"gemini_gateway_[a-z_]+", json.dumps(doc)))):
                assert await query(session, prom, name), f"Prometheus has no series {name}"

            # The traffic makes these non-zero; a wrong selector would make them 0 or NaN.
            ratio = 'sum(rate(gemini_gateway_requests_total{code="500"}[30s]))'
            assert (await scalar(session, prom, ratio) or 0) > 0
            lane_full = 'gemini_gateway_queue_rejections_total{reason="lane_full"}'
            assert await scalar(session, prom, lane_full) == 2
            hits = 'sum(gemini_gateway_requests_total{cache=~"hit|coalesced"})'
            assert await scalar(session, prom, hits) == 6
            waits = f'sum(gemini_gateway_queue_wait_seconds_count{{model="{NB2}"}})'
            assert await scalar(session, prom, waits) == 4
            ttfb = "sum(gemini_gateway_upstream_time_to_first_byte_seconds_count)"
            assert await scalar(session, prom, ttfb) == 2


async def label_values(session: aiohttp.ClientSession, prom: Prometheus) -> list[str]:
    """What the dashboard's `label_values(gemini_gateway_requests_total, model)` lists."""
    params = {"match[]": "gemini_gateway_requests_total"}
    async with session.get(f"{prom.url}/api/v1/label/model/values", params=params) as resp:
        body = await resp.json()
    assert body["status"] == "success"
    values: list[str] = body["data"]
    return values
