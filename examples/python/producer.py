"""Publishes `Telemetry` from Python; the Rust `consumer` example reads it as its own struct.

    pip install ./smobject-py
    python examples/python/producer.py --hz 10 --count 100
    cargo run -p examples --example consumer        # in another terminal, before or after

The struct is declared once more here, field for field as `examples::Telemetry`: same name,
fields and types give the same schema, so the Rust consumer's `Telemetry::access()` accepts
the object (a difference would be refused, naming the field). The key is the Rust examples':
the key file /tmp/smobject-telemetry, id "a". Ctrl-C stops it cleanly: the last publish says
"done" and the handle detaches (the last process out frees the object).
"""

import argparse
import math
import time

import smobject

STATUS_RUNNING = 1
STATUS_DONE = 2


class Telemetry(smobject.Struct):
    """`examples::Telemetry` (examples/src/lib.rs)."""

    seq: smobject.u64
    unix_ms: smobject.u64
    pos: smobject.f64[3]
    status: smobject.u32
    _pad: smobject.u32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hz", type=float, default=10.0, help="publishes per second (default 10)")
    ap.add_argument("--count", type=int, default=0, help="stop after N publishes (default: until Ctrl-C)")
    ap.add_argument("--path", default="/tmp/smobject-telemetry", help="key file (created if missing)")
    ap.add_argument("--id", default="a", help="project id, one character")
    args = ap.parse_args()
    if not 0 < args.hz <= 100_000:
        ap.error(f"--hz must be in (0, 100000], not {args.hz}")

    with smobject.open_or_create(args.path, args.id, Telemetry) as shared:
        role = "created" if shared.created else "attached to"
        print(f"[py-producer] {role} {args.path} id {args.id!r}; publishing at {args.hz} Hz, Ctrl-C to stop", flush=True)
        period = 1.0 / args.hz
        sent = 0
        seq = shared.read()["seq"]
        try:
            while args.count == 0 or sent < args.count:
                seq += 1
                last = args.count != 0 and sent + 1 == args.count
                angle = seq * 0.1
                shared.write(
                    seq=seq,
                    unix_ms=int(time.time() * 1000),
                    pos=[math.cos(angle), math.sin(angle), seq * 0.01],
                    status=STATUS_DONE if last else STATUS_RUNNING,
                )
                sent += 1
                print(f"[py-producer] published seq={seq} v{shared.version}", flush=True)
                if not last:
                    time.sleep(period)
        except KeyboardInterrupt:
            shared.write(status=STATUS_DONE)
            print(f"[py-producer] stopped by Ctrl-C after {sent} publishes", flush=True)
        print(f"[py-producer] detaching ({shared.attached} process(es) attached, this one included)", flush=True)


if __name__ == "__main__":
    main()
