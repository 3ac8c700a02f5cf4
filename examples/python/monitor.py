"""Plots the position the Rust `producer` example publishes, to a PNG (headless matplotlib).

    pip install ./smobject-py matplotlib
    cargo run -p examples --example producer -- --hz 20 &
    python examples/python/monitor.py --count 50 --out telemetry.png

It opens the object with no declaration (`smobject.access`: the layout comes from the schema
the Rust producer stored), waits for each update with `wait_for_update` (a futex wait, the GIL
released), and re-renders the PNG every `--every` updates, so the picture is live while it
runs. It waits for the producer to appear, stops after `--count` updates, when the producer
says it is done, when it leaves, or on Ctrl-C.
"""

import argparse
import time

import smobject

STATUS_DONE = 2


def render(samples, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt

    seqs = [s["seq"] for s in samples]
    fig, (ax_xy, ax_t) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax_xy.plot([s["pos"][0] for s in samples], [s["pos"][1] for s in samples], "o-", ms=3)
    ax_xy.set(title="pos (x, y)", xlabel="x", ylabel="y", aspect="equal")
    for i, name in enumerate("xyz"):
        ax_t.plot(seqs, [s["pos"][i] for s in samples], label=name)
    ax_t.set(title="pos over publishes", xlabel="seq")
    ax_t.legend()
    fig.suptitle(f"Telemetry: {len(samples)} updates, last seq {seqs[-1] if seqs else '-'}")
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def attach(path: str, id: str) -> smobject.Object:
    said = False
    while True:
        try:
            return smobject.access(path, id)
        except (smobject.NotFound, smobject.PathNotFound):
            if not said:
                print("[monitor] waiting for the producer (cargo run -p examples --example producer)", flush=True)
                said = True
            time.sleep(0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="telemetry.png", help="the PNG to write (default telemetry.png)")
    ap.add_argument("--count", type=int, default=0, help="stop after N updates (default: until the producer is done)")
    ap.add_argument("--every", type=int, default=10, help="re-render the PNG every N updates (default 10)")
    ap.add_argument("--path", default="/tmp/smobject-telemetry")
    ap.add_argument("--id", default="a")
    args = ap.parse_args()

    samples = []
    try:
        with attach(args.path, args.id) as o:
            print(f"[monitor] attached: {o.schema}", flush=True)
            seen = o.version
            while args.count == 0 or len(samples) < args.count:
                try:
                    seen = o.wait_for_update(seen, timeout=1.0)
                except smobject.Timeout:
                    if o.attached <= 1:
                        print("[monitor] the producer left", flush=True)
                        break
                    continue
                snap = o.read()
                samples.append(snap)
                if len(samples) % args.every == 0:
                    render(samples, args.out)
                if snap["status"] == STATUS_DONE:
                    print("[monitor] the producer is done", flush=True)
                    break
    except KeyboardInterrupt:
        print("[monitor] stopped by Ctrl-C", flush=True)
    render(samples, args.out)
    print(f"[monitor] {len(samples)} updates plotted to {args.out}", flush=True)


if __name__ == "__main__":
    main()
