"""examples/python with the Rust examples: the monitor plots the Rust producer's object to a
PNG, and the Rust consumer reads the Python producer's object as its own struct."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest
from conftest import ROOT, bin_path, keys_of, segments

import smobject

EXAMPLES = ROOT / "examples" / "python"
KEY = "/tmp/smobject-telemetry"  # the Rust examples' key file, id 'a'


@pytest.fixture
def demo_key():
    """The examples' fixed key; skipped if a demo is running on it now; no segment after, and
    the key file removed again if the test made it."""
    made = not os.path.exists(KEY)
    open(KEY, "a").close()
    try:
        try:
            smobject.access(KEY, "a").close()
            pytest.skip(f"a producer is running on {KEY}: not disturbing it")
        except smobject.NotFound:
            pass
        yield KEY
        keys = keys_of(KEY)
        deadline = time.monotonic() + 5
        while [k for k in segments() if k in keys] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not [k for k in segments() if k in keys], "the demo left segments behind"
    finally:
        if made:
            os.unlink(KEY)


def test_monitor_plots_the_rust_producer(demo_key, spawn, tmp_path):
    """The Python monitor plots 20 updates of the Rust producer to a PNG, headless."""
    pytest.importorskip("matplotlib")
    out = tmp_path / "telemetry.png"
    monitor = spawn(sys.executable, str(EXAMPLES / "monitor.py"), "--count", "20", "--every", "5", "--out", str(out))
    producer = spawn(bin_path("examples/producer"), "--hz", "50", stdin=False)
    lines = []
    while True:
        line = monitor.line(timeout=60)
        lines.append(line)
        if "plotted to" in line:
            break
    assert monitor.finish(60) == 0, lines
    os.kill(producer.proc.pid, signal.SIGINT)  # Ctrl-C: it marks the value done and detaches
    assert producer.finish(60) == 0
    assert any("attached: struct Telemetry { seq: u64, unix_ms: u64, pos: [f64; 3]" in l for l in lines), lines
    assert lines[-1] == f"[monitor] 20 updates plotted to {out}"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_rust_consumer_reads_the_python_producer(demo_key, spawn):
    """The Rust consumer attaches to the Python producer's object and prints its values."""
    consumer = spawn(bin_path("examples/consumer"), stdin=False)
    time.sleep(0.2)
    producer = spawn(sys.executable, str(EXAMPLES / "producer.py"), "--hz", "20", "--count", "30")
    out = []
    while True:
        line = producer.line(timeout=60)
        out.append(line)
        if "detaching" in line:
            break
    assert producer.finish(60) == 0, out
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = consumer.line(timeout=30)
        seen.append(line)
        if "the producer left" in line:
            break
    os.kill(consumer.proc.pid, signal.SIGINT)
    assert consumer.finish(30) == 0
    assert any("seq=30 " in l and "status=2 (done)" in l for l in seen), seen
    assert any("attached to /tmp/smobject-telemetry" in l for l in seen), seen


def test_benchmark_script_smoke(tmp_path):
    """bench.py runs end to end (one brief pass; no timing asserted)."""
    pytest.importorskip("sysv_ipc")
    import subprocess

    peer = bin_path("smo-py-peer")
    out = subprocess.run(
        [sys.executable, str(ROOT / "smobject-py" / "bench" / "bench.py"), "--smoke", "--bin-dir", os.path.dirname(peer)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "read_into 48 B" in out.stdout and "round trip" in out.stdout, out.stdout
