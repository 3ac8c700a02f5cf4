"""`wait_for_update`: wakes on a write, releases the GIL while it sleeps, and lets Ctrl-C
through within 100 ms."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from conftest import Telemetry

import smobject


def test_wakes_on_write_from_another_thread_and_releases_the_gil(key_path):
    with smobject.create(key_path, "a", Telemetry) as o:
        ticks = 0
        stop = threading.Event()

        def busy() -> None:  # runs only if the waiting thread released the GIL
            nonlocal ticks
            while not stop.is_set():
                ticks += 1

        def writer() -> None:
            time.sleep(0.2)
            o.write(seq=5)

        threads = [threading.Thread(target=busy), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        start = time.monotonic()
        v = o.wait_for_update(0, timeout=5)
        took = time.monotonic() - start
        stop.set()
        for t in threads:
            t.join()
        assert v == 1 and o.read()["seq"] == 5
        assert 0.15 < took < 2
        assert ticks > 1000, "another Python thread ran while this one waited"


def test_close_from_another_thread_while_waiting(key_path):
    o = smobject.create(key_path, "a", Telemetry)
    results = []

    def waiter() -> None:
        try:
            results.append(o.wait_for_update(0, timeout=0.5))
        except smobject.Timeout:
            results.append("timeout")

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(0.1)
    o.close()  # the waiter keeps its own reference until it returns
    t.join()
    assert results == ["timeout"] and o.closed


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_ctrl_c_interrupts_within_100_ms(key_path):
    with smobject.create(key_path, "a", Telemetry) as o:
        worst = 0.0
        for _ in range(5):
            sent = []

            def interrupt() -> None:
                sent.append(time.monotonic())
                os.kill(os.getpid(), signal.SIGINT)

            timer = threading.Timer(0.15, interrupt)
            timer.start()
            try:
                with pytest.raises(KeyboardInterrupt):
                    o.wait_for_update(o.version)  # no time-out: only Ctrl-C ends it
                took = time.monotonic() - sent[0]
            finally:
                timer.join()
            worst = max(worst, took)
        assert worst < 0.1, f"KeyboardInterrupt {worst * 1000:.1f} ms after SIGINT"
