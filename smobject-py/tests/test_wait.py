"""`wait_for_update`: wakes on a write, releases the GIL while it sleeps, and lets Ctrl-C
through within 100 ms."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest
from conftest import Telemetry, no_segments_under

import smobject


class Words(smobject.Struct):
    """`tests::structs::Words` (of `smo-helper`)."""

    words: smobject.u64[32]


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


def test_close_from_another_thread_wakes_the_waiters_and_detaches(key_path):
    o = smobject.create(key_path, "a", Telemetry)
    results = []

    def waiter(timeout) -> None:
        try:
            results.append(o.wait_for_update(0, timeout=timeout))
        except smobject.Closed as e:
            results.append(("closed", time.monotonic(), str(e)))

    # Bounded and daemon, so that a regression fails the test instead of hanging pytest.
    threads = [threading.Thread(target=waiter, args=(t,), daemon=True) for t in (10.0, 30.0, 10.0)]
    for t in threads:
        t.start()
    time.sleep(0.1)
    closed_at = time.monotonic()
    o.close()
    # The waiters let go within a slice (50 ms), so close() really detached: the last one out
    # freed the pair before close() returned.
    assert not no_segments_under(key_path), "close() returned with the object still attached"
    for t in threads:
        t.join(5)
        assert not t.is_alive(), "a waiter still sleeps after close()"
    assert len(results) == 3 and all(r[0] == "closed" for r in results), results
    assert all(r[1] - closed_at < 0.5 for r in results), results
    assert "closed by another thread during wait_for_update" in results[0][2]
    assert o.closed


def test_a_daemon_thread_waiting_at_exit_leaves_nothing(key_path, spawn):
    code = """
import smobject, sys, threading, time
class T(smobject.Struct):
    seq: smobject.u64
o = smobject.create(sys.argv[1], "a", T)
def wait():
    try:
        o.wait_for_update(0)          # no time-out: only the close at exit ends it
    except smobject.Closed:
        pass
threading.Thread(target=wait, daemon=True).start()
time.sleep(0.2)
print("exiting", flush=True)
"""
    p = spawn(sys.executable, "-c", code, key_path)
    p.expect("exiting")
    assert p.finish() == 0
    assert not no_segments_under(key_path), "the exit's close left a stale pair behind"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_ctrl_c_interrupts_a_write_waiting_for_the_lock_and_writes_nothing(key_path, spawn):
    with smobject.create(key_path, "W", Words) as o:
        holder = spawn("smo-helper", "t-die-in-write", key_path, "W")
        holder.expect("inside")  # it holds the writer lock and sleeps
        v = o.version
        sent = []

        def interrupt() -> None:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)

        timer = threading.Timer(0.3, interrupt)
        # Should the write not listen to signals, killing the holder after 5 s lets it end:
        # the test then fails on the time taken instead of hanging.
        watchdog = threading.Timer(5.0, holder.kill)
        timer.start()
        watchdog.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                o.write(**{"words[0]": 7})
            took = time.monotonic() - sent[0]
        finally:
            timer.join()
            watchdog.cancel()
        assert took < 0.2, f"KeyboardInterrupt {took * 1000:.0f} ms after SIGINT"
        holder.kill()  # the lock is recovered from the dead holder by the next write
        assert o.version == v, "nothing was written"
        assert o.read()["words"][0] != 7
        assert o.write(**{"words[0]": 7}) > v and o.read()["words"][0] == 7


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
