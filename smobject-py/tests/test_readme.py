"""The Python code of README.md and smobject-py/README.md runs as written, on a key file of the
test's own in place of `/tmp/telemetry`, and prints what its comments say it prints."""

from __future__ import annotations

import contextlib
import io
import re
import threading
from typing import List, Optional

import pytest
from conftest import ROOT, Telemetry

import smobject


def python_blocks(markdown: str) -> List[str]:
    """The ```python blocks of a markdown text (also ```py, and with attributes after a comma)."""
    blocks, current = [], None
    for line in markdown.splitlines():
        fence = line.strip()
        lang = fence[3:].split(",")[0].strip() if fence.startswith("```") else None
        if current is None and lang in ("python", "py"):
            current = []
        elif current is not None and line.strip() == "```":
            blocks.append("\n".join(current) + "\n")
            current = None
        elif current is not None:
            current.append(line)
    assert current is None, "a ```python block is never closed"
    return blocks


def promised_prints(code: str) -> List[str]:
    """What the block's `print(...)  # {...}` lines say they print, in order."""
    return [m.group(1).strip() for m in re.finditer(r"^\s*print\(.*\)\s+# (.*)$", code, re.M)]


def run(code: str, key_path: str, names: Optional[dict] = None) -> List[str]:
    """Runs `code` with `/tmp/telemetry` replaced by `key_path`, its globals in `names`; returns
    the lines it printed."""
    assert "/tmp/telemetry" in code, "the block no longer uses the README's key: update this test"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace("/tmp/telemetry", key_path), "<README>", "exec"), {} if names is None else names)
    return out.getvalue().splitlines()


@contextlib.contextmanager
def writing(obj, **fields):
    """Writes `fields` to `obj` from another thread every 20 ms while the block runs, so that a
    block's wait ends however long it takes to get there (the fields are ones the block does not
    print, or values it already holds)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.02):
            obj.write(**fields)

    t = threading.Thread(target=loop)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def test_the_readme_parsers_find_blocks_and_promises():
    md = "x\n```python\nprint(1)   # 1\nprint(2)\n```\n```sh\nls\n```\n```py\npass\n```\n```pycon\n>>> 1\n```\n"
    assert python_blocks(md) == ["print(1)   # 1\nprint(2)\n", "pass\n"]
    assert promised_prints(python_blocks(md)[0]) == ["1"]


def test_the_top_readmes_python_block_runs_as_written(key_path):
    (block,) = python_blocks((ROOT / "README.md").read_text())
    promised = promised_prints(block)
    assert promised == ["{'seq': 7, 'pos': [1.0, 2.0, 3.0], 'status': 2, '_pad': 0}"]
    # The block accesses the object another process made (the Rust producer: seq 7 ...), waits
    # for its next write, writes, then makes an object of its own under id 'b'.
    with smobject.create(key_path, "a", Telemetry) as producer:
        producer.write(seq=7, pos=[1.0, 2.0, 3.0], status=2)
        before, names = producer.version, {}
        with writing(producer, status=2):  # the value the block prints
            assert run(block, key_path, names) == promised
        assert names["v"] > before  # the version of a write it waited for
        names.clear()  # its handle: detach before the leak check
        snap = producer.read()
        assert (snap["seq"], snap["pos"], snap["status"]) == (8, [4.0, 5.0, 6.0], 2)
    with pytest.raises(smobject.NotFound):
        smobject.access(key_path, "b")  # the block's `with` freed its object


def test_the_python_readmes_block_runs_as_written(key_path):
    (block,) = python_blocks((ROOT / "smobject-py" / "README.md").read_text())
    # Two processes' code: the creator's `with` block, then another's access and wait.
    at = block.find("# in another process")
    assert at > 0, "the block no longer has its second process: update this test"
    first, second = block[:at], block[at:]
    promised = promised_prints(first)
    assert promised == ["{'seq': 1, 'pos': [1.0, 2.0, 3.0], 'status': 0, '_pad': 0}"]
    assert run(first, key_path) == promised
    with pytest.raises(smobject.NotFound):
        smobject.access(key_path, "a")  # leaving the block freed it, as its comment says
    with smobject.create(key_path, "a", Telemetry) as creator:
        before, names = creator.version, {"smobject": smobject}  # the block's import, at its top
        with writing(creator, seq=2):
            assert run(second, key_path, names) == []
        assert names["v"] > before and creator.read()["seq"] == 2
        names.clear()
