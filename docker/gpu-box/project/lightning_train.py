#!/usr/bin/env python3
"""A stand-in for a PyTorch Lightning 2.x run, so rtrain's tests and the demo box see what a real one prints and writes.

Stdlib only; it trains nothing. What it copies from a real run (tests/fixtures/lightning/ holds one, captured by
scripts/capture-lightning-fixtures.sh):
- Lightning's TQDM bar on stdout, one bar per epoch, redrawn with `\\r` only and never a newline between epochs:
  `Epoch 3:  45%|████▌     | 40/88 [00:01<00:02, 30.10it/s, v_num=0, train_loss=0.043]`; the last epoch of a
  max_steps run counts only the steps left. stdout is Python's, so it is block-buffered when it is not a terminal
  (unless PYTHONUNBUFFERED is set, as rtrain sets it).
- CSVLogger: `lightning_logs/version_N/metrics.csv` (N: one more than the highest there), `epoch,step,train_loss`\r\n
  rows every `log_every` steps with Lightning's 0-based step, written out every `flush_every` steps and at the end.
- ModelCheckpoint(every_n_train_steps=save_steps, save_last=True): `version_N/checkpoints/epoch=E-step=S.ckpt`,
  then `last.ckpt` written right after it.
- Resume: `--ckpt_path PATH` (or `ckpt_path:` in the config's `training:` block) continues from the step the
  checkpoint holds, in a new version directory, as `Trainer.fit(ckpt_path=...)` does.

    python3 lightning_train.py [CONFIG] [--max-steps N] [--save-steps K] [--steps-per-epoch B]
        [--seconds-per-step S] [--log-every L] [--flush-every F] [--ckpt_path PATH]
"""

import argparse
import json
import math
import os
import re
import sys
import time

DEFAULTS = {
    "max_steps": 300,
    "save_steps": 100,
    "steps_per_epoch": 88,
    "seconds_per_step": 0.2,
    "log_every": 10,
    "flush_every": 100,
    "ckpt_path": None,
}


def read_config(path):
    """`key: scalar` lines of the top-level `training:` block (no PyYAML on a bare box)."""
    out = {}
    if not path or not os.path.exists(path):
        return out
    block = False
    with open(path) as f:
        for line in f:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if not line[0].isspace():
                block = line.strip() == "training:"
                continue
            m = re.match(r"\s+([A-Za-z_]+):\s*(.*?)\s*(#.*)?$", line)
            if block and m and m.group(1) in DEFAULTS:
                v = m.group(2).strip("'\"")
                if v in ("", "null", "~"):
                    out[m.group(1)] = None
                    continue
                for kind in (int, float):
                    try:
                        v = kind(v)
                        break
                    except ValueError:
                        pass
                out[m.group(1)] = v
    return out


def settings():
    ap = argparse.ArgumentParser()
    ap.add_argument("config", nargs="?")
    for key in DEFAULTS:
        ap.add_argument("--" + key.replace("_", "-"), dest=key, default=argparse.SUPPRESS)
    ap.add_argument("--ckpt_path", dest="ckpt_path", default=argparse.SUPPRESS)
    args = vars(ap.parse_args())
    s = dict(DEFAULTS)
    s.update(read_config(args.pop("config", None)))
    for k, v in args.items():
        s[k] = v if k == "ckpt_path" else type(DEFAULTS[k])(v)
    return s


def clock(seconds):
    seconds = int(seconds)
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def bar(epoch, n, total, elapsed, rate, postfix):
    frac = n / total if total else 0.0
    filled = int(frac * 10)
    partial = " ▏▎▍▌▋▊▉"[int((frac * 10 - filled) * 8)] if filled < 10 else ""
    cells = ("█" * filled + partial).ljust(10)
    if rate:
        rate_s = f"{rate:5.2f}it/s"
        remaining = clock((total - n) / rate)
    else:
        rate_s, remaining = "?it/s", "?"
    return f"Epoch {epoch}: {int(frac * 100):3d}%|{cells}| {n}/{total} [{clock(elapsed)}<{remaining}, {rate_s}{postfix}]"


def main():
    s = settings()
    root = "lightning_logs"
    os.makedirs(root, exist_ok=True)
    versions = [int(d[8:]) for d in os.listdir(root) if re.fullmatch(r"version_\d+", d)]
    version = max(versions) + 1 if versions else 0
    vdir = os.path.join(root, f"version_{version}")
    cdir = os.path.join(vdir, "checkpoints")
    os.makedirs(cdir)
    step = 0
    if s["ckpt_path"]:
        with open(s["ckpt_path"]) as f:
            step = json.load(f)["global_step"]
        print(f"Restoring states from the checkpoint path at {s['ckpt_path']}", file=sys.stderr, flush=True)
    max_steps, per_epoch = s["max_steps"], s["steps_per_epoch"]
    rows = []
    csv = os.path.join(vdir, "metrics.csv")

    def flush():
        new = not os.path.exists(csv)
        with open(csv, "a") as f:
            if new:
                f.write("epoch,step,train_loss\r\n")
            f.writelines(rows)
        rows.clear()

    out = sys.stdout
    out.write("Training: |          | 0/? [00:00<?, ?it/s]")
    loss = None
    while step < max_steps:
        epoch = step // per_epoch
        first = step - epoch * per_epoch
        total = min(per_epoch, max_steps - epoch * per_epoch)
        started = time.monotonic()
        postfix = f", v_num={version}" + (f", train_loss={loss:.3g}" if loss is not None else "")
        out.write("\r" + bar(epoch, first, total, 0, None, postfix))
        for n in range(first + 1, total + 1):
            time.sleep(s["seconds_per_step"])
            loss = 2.0 * math.exp(-step / 150.0) + 0.01
            step += 1
            elapsed = time.monotonic() - started
            rate = (n - first) / elapsed if elapsed > 0 else None
            postfix = f", v_num={version}, train_loss={loss:.3g}"
            out.write("\r" + bar(epoch, n, total, elapsed, rate, postfix))
            if step % s["log_every"] == 0:
                rows.append(f"{epoch},{step - 1},{loss}\r\n")  # the csv module ends rows so
            if step % s["flush_every"] == 0:
                flush()
            if step % s["save_steps"] == 0:
                state = json.dumps({"global_step": step, "epoch": epoch, "pad": "x" * 4096})
                for name in (f"epoch={epoch}-step={step}.ckpt", "last.ckpt"):
                    tmp = os.path.join(cdir, name + ".tmp")
                    with open(tmp, "w") as f:
                        f.write(state)
                    os.replace(tmp, os.path.join(cdir, name))
    flush()
    out.write("\n")
    out.flush()
    print(f"`Trainer.fit` stopped: `max_steps={max_steps}` reached.", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
