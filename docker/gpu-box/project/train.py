#!/usr/bin/env python3
"""A stand-in for a Hugging Face Trainer run, so rtrain's tests and the demo box see what a real one prints and writes.

Stdlib only. It trains nothing: each step sleeps `seconds_per_step`, then it prints what transformers 5 prints
(tqdm's non-TTY bar on stderr, `{'loss': '2.104', ...}` dicts on stdout) and writes `checkpoint-N/` the way
transformers does (in place, trainer_state.json last, oldest removed beyond save_total_limit).

Settings come from the `training:` block of config/training_config.yaml; command-line flags override them so tests
can run it fast:  python3 train.py [CONFIG] [--max-steps N] [--seconds-per-step S] [--crash-at-step K]
[--hang-at-step K] [--sighup-file PATH] ...  On SIGINT it does what the Hugging Face Trainer does: a KeyboardInterrupt mid-step, nothing
saved, death by SIGINT (exit 130).
"""

import argparse
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import time

DEFAULTS = {
    "output_dir": "outputs",
    "max_steps": 120,
    "save_steps": 40,
    "save_total_limit": None,
    "logging_steps": 10,
    "seconds_per_step": 0.5,
    "learning_rate": 5e-05,
    "train_batch_size": 8,
    "steps_per_epoch": 512,
    "model_size_bytes": 145448,
    "resume_from_checkpoint": None,
    "crash_at_step": None,
    "ignore_sigint": False,
    "hang_at_step": None,
    "sighup_file": None,
    "seed": 42,
}


# ---------------------------------------------------------------------------------------------------------------
# config: just enough YAML for `key: scalar` lines in one top-level block (no PyYAML on a bare box)


def parse_scalar(text):
    text = text.strip()
    if text.startswith("'"):
        end = 1
        out = []
        while end < len(text):
            if text[end] == "'":
                if text[end + 1 : end + 2] == "'":
                    out.append("'")
                    end += 2
                    continue
                return "".join(out)
            out.append(text[end])
            end += 1
        raise ValueError("unterminated quoted value: " + text)
    if text.startswith('"'):
        match = re.match(r'"((?:[^"\\]|\\.)*)"', text)
        if not match:
            raise ValueError("unterminated quoted value: " + text)
        return json.loads('"' + match.group(1) + '"')
    text = re.split(r"\s#", text, maxsplit=1)[0].strip()
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text.lower() in ("true", "yes", "on"):
        return True
    if text.lower() in ("false", "no", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_block(path, block="training"):
    values = {}
    inside = False
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\r\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indented = line[0] in " \t"
            if not indented:
                inside = re.match(re.escape(block) + r":\s*(#.*)?$", line) is not None
                continue
            if inside:
                # Keys may be quoted ("resume_from_checkpoint": ...), as any YAML loader accepts.
                match = re.match(r"""\s+(["']?)([A-Za-z_][A-Za-z0-9_]*)\1:(\s+(.*))?$""", line)
                if match:
                    values[match.group(2)] = parse_scalar(match.group(4) or "")
    return values


def settings(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="config/training_config.yaml")
    flags = {
        "--output-dir": str,
        "--max-steps": int,
        "--save-steps": int,
        "--save-total-limit": int,
        "--logging-steps": int,
        "--seconds-per-step": float,
        "--model-size-bytes": int,
        "--resume-from-checkpoint": str,
        "--crash-at-step": int,
        "--hang-at-step": int,
        "--sighup-file": str,
    }
    for flag, kind in flags.items():
        parser.add_argument(flag, type=kind)
    parser.add_argument("--ignore-sigint", action="store_true", default=None)
    args = parser.parse_args(argv)
    cfg = dict(DEFAULTS)
    if os.path.exists(args.config):
        cfg.update(read_block(args.config))
    for key, value in vars(args).items():
        if key != "config" and value is not None:
            cfg[key] = value
    return cfg


# ---------------------------------------------------------------------------------------------------------------
# tqdm's non-TTY rendering (tqdm.std.format_meter with ncols unknown, so a 10-cell bar)

BAR_CHARS = " ▏▎▍▌▋▊▉█"


def format_interval(seconds):
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return "{:d}:{:02d}:{:02d}".format(h, m, s) if h else "{:02d}:{:02d}".format(m, s)


def format_meter(n, total, elapsed, rate, desc=""):
    frac = n / total if total else 0
    full, part = divmod(int(frac * 10 * 8), 8)
    bar = BAR_CHARS[-1] * full
    if full < 10:
        bar += BAR_CHARS[part] + " " * (10 - full - 1)
    if rate:
        rate_fmt = "{:5.2f}s/it".format(1 / rate) if rate < 1 else "{:5.2f}it/s".format(rate)
        remaining = format_interval((total - n) / rate)
    else:
        rate_fmt, remaining = "?it/s", "?"
    return "{}{:3.0f}%|{}| {}/{} [{}<{}, {}]".format(
        desc, frac * 100, bar, n, total, format_interval(elapsed), remaining, rate_fmt
    )


class Bar:
    """One tqdm bar on stderr: `\\r` redraws padded to the previous width, no newline until close()."""

    def __init__(self, total):
        self.total, self.n, self.start = total, 0, time.time()
        self.last_len, self.rate, self.last_t, self.last_n = 0, None, self.start, 0
        self.draw()

    def draw(self):
        line = format_meter(self.n, self.total, time.time() - self.start, self.rate)
        sys.stderr.write("\r" + line + " " * max(self.last_len - len(line), 0))
        sys.stderr.flush()
        self.last_len = len(line)

    def update(self, k=1):
        now = time.time()
        self.n += k
        if now > self.last_t:
            instant = (self.n - self.last_n) / (now - self.last_t)
            self.rate = instant if self.rate is None else 0.3 * instant + 0.7 * self.rate
        self.last_t, self.last_n = now, self.n
        self.draw()

    def write(self, message):
        """tqdm.write: clear the bar (stderr), print the message (stdout), redraw.

        Like tqdm.write (and so transformers' ProgressCallback.on_log), stdout is NOT flushed: into a pipe Python
        block-buffers it (8 KiB), so without PYTHONUNBUFFERED the dict lines reach the log in bursts or at exit.
        """
        sys.stderr.write("\r" + " " * self.last_len + "\r")
        sys.stderr.flush()
        sys.stdout.write(message + "\n")
        self.draw()

    def close(self):
        elapsed = time.time() - self.start
        if elapsed > 0 and self.n:
            self.rate = self.n / elapsed
        self.draw()
        sys.stderr.write("\n")
        sys.stderr.flush()


def fmt(value):
    """transformers 5 logs values as 4-significant-digit strings."""
    return "{:.4g}".format(value)


def log_line(values):
    return "{" + ", ".join("'{}': '{}'".format(k, fmt(v)) for k, v in values.items()) + "}"


# ---------------------------------------------------------------------------------------------------------------
# checkpoints


def write_bytes(path, size, seed):
    block = bytes(random.Random(seed).getrandbits(8) for _ in range(min(size, 4096))) or b"\0"
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[:left])
            left -= len(block)


def write_safetensors(path, size, seed):
    header = json.dumps({"__metadata__": {"format": "pt"}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header)
    with open(path, "ab") as f:
        block = bytes(random.Random(seed).getrandbits(8) for _ in range(4096))
        left = max(size - 8 - len(header), 0)
        while left > 0:
            f.write(block[:left])
            left -= len(block)


def trainer_state(cfg, step, history):
    return {
        "best_global_step": None,
        "best_metric": None,
        "best_model_checkpoint": None,
        "epoch": step / cfg["steps_per_epoch"],
        "eval_steps": 500,
        "global_step": step,
        "is_hyper_param_search": False,
        "is_local_process_zero": True,
        "is_world_process_zero": True,
        "log_history": history,
        "logging_steps": cfg["logging_steps"],
        "max_steps": cfg["max_steps"],
        "num_input_tokens_seen": 0,
        "num_train_epochs": math.ceil(cfg["max_steps"] / cfg["steps_per_epoch"]),
        "save_steps": cfg["save_steps"],
        "stateful_callbacks": {
            "TrainerControl": {
                "args": {
                    "should_epoch_stop": False,
                    "should_evaluate": False,
                    "should_log": False,
                    "should_save": True,
                    "should_training_stop": step >= cfg["max_steps"],
                },
                "attributes": {},
            }
        },
        "total_flos": float(step * 39124992),
        "train_batch_size": cfg["train_batch_size"],
        "trial_name": None,
        "trial_params": None,
    }


def save_checkpoint(cfg, step, history):
    out = cfg["output_dir"]
    ckpt = os.path.join(out, "checkpoint-{}".format(step))
    os.makedirs(ckpt, exist_ok=True)
    # transformers 5's nested "Writing model shards" bar, drawn one line below the main bar.
    sys.stderr.write("\n\rWriting model shards:   0%|          | 0/1 [00:00<?, ?it/s]\x1b[A")
    size = int(cfg["model_size_bytes"])
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 2}, f, indent=2)
    with open(os.path.join(ckpt, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 50256, "eos_token_id": 50256}, f, indent=2)
    write_safetensors(os.path.join(ckpt, "model.safetensors"), size, step)
    sys.stderr.write("\rWriting model shards: 100%|" + "█" * 10 + "| 1/1 [00:00<00:00, 370.69it/s]\n")
    sys.stderr.flush()
    write_bytes(os.path.join(ckpt, "optimizer.pt"), 2 * size + 18187, step + 1)
    write_bytes(os.path.join(ckpt, "scheduler.pt"), 1465, step + 2)
    write_bytes(os.path.join(ckpt, "rng_state.pth"), 14455, step + 3)
    write_bytes(os.path.join(ckpt, "training_args.bin"), 5265, step + 4)
    # Written last: its presence is what marks the checkpoint complete.
    with open(os.path.join(ckpt, "trainer_state.json"), "w") as f:
        f.write(json.dumps(trainer_state(cfg, step, history), indent=2, sort_keys=True) + "\n")
    rotate(cfg)


def rotate(cfg):
    limit = cfg["save_total_limit"]
    if not limit or limit <= 0:
        return
    out = cfg["output_dir"]
    steps = sorted(
        int(m.group(1)) for m in (re.match(r"^checkpoint-(\d+)$", n) for n in os.listdir(out)) if m
    )
    for step in steps[: max(len(steps) - limit, 0)]:
        path = os.path.join(out, "checkpoint-{}".format(step))
        sys.stderr.write("Deleting older checkpoint [{}] due to args.save_total_limit\n".format(path))
        sys.stderr.flush()
        shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# training


def load_resume(path):
    state_file = os.path.join(path, "trainer_state.json")
    if not os.path.isfile(state_file):
        raise ValueError("Can't find a valid checkpoint at {}".format(path))
    with open(state_file) as f:
        state = json.load(f)
    return int(state["global_step"]), state.get("log_history", [])


def training_step(cfg, step):
    if cfg["crash_at_step"] is not None and step == int(cfg["crash_at_step"]):
        raise RuntimeError(
            "simulated crash at step {} (crash_at_step={})".format(step, cfg["crash_at_step"])
        )
    if cfg["hang_at_step"] is not None and step == int(cfg["hang_at_step"]):
        # An NCCL hang or a dataloader deadlock: alive, silent, for ever (until a signal).
        while True:
            time.sleep(3600)
    time.sleep(float(cfg["seconds_per_step"]))
    rng = random.Random(cfg["seed"] * 100003 + step)
    loss = 0.4 + 2.2 * math.exp(-3.0 * step / cfg["max_steps"]) + rng.uniform(-0.05, 0.05)
    return loss, 0.6 + rng.uniform(0.0, 0.8)


def count_sighups(path):
    """Survive SIGHUP and count it in `path`: tests prove that losing the network never signals the run (a real
    trainer would die of the SIGHUP a closed terminal sends)."""
    got = [0]

    def on_sighup(signum, frame):
        got[0] += 1
        with open(path, "w", encoding="utf-8") as f:
            f.write("%d\n" % got[0])
        sys.stderr.write("[train.py] received SIGHUP (%d so far)\n" % got[0])

    signal.signal(signal.SIGHUP, on_sighup)


def train(cfg):
    if cfg["sighup_file"]:
        count_sighups(cfg["sighup_file"])
    if cfg["ignore_sigint"]:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        sys.stderr.write("[train.py] ignore_sigint is set: Ctrl-C (SIGINT) is ignored\n")
    max_steps = int(cfg["max_steps"])
    start_step, history = 0, []
    resume = cfg["resume_from_checkpoint"]
    if resume is True:
        # transformers' get_last_checkpoint: the highest checkpoint-N in output_dir, complete or not.
        out = cfg["output_dir"]
        names = os.listdir(out) if os.path.isdir(out) else []
        steps = [int(m.group(1)) for m in (re.match(r"^checkpoint-(\d+)$", n) for n in names) if m]
        if not steps:
            raise ValueError("No valid checkpoint found in output directory ({})".format(out))
        resume = os.path.join(out, "checkpoint-{}".format(max(steps)))
    if resume:
        start_step, history = load_resume(resume)
        history = [h for h in history if h.get("step", 0) <= start_step and "loss" in h]
        sys.stderr.write(
            "Continuing training from checkpoint, will skip to saved global_step {}\n".format(start_step)
        )
    os.makedirs(cfg["output_dir"], exist_ok=True)
    began = time.time()
    bar = Bar(max_steps)
    if start_step:
        bar.update(start_step)
    losses = []
    for step in range(start_step + 1, max_steps + 1):
        loss, grad_norm = training_step(cfg, step)
        losses.append(loss)
        bar.update(1)
        if step % int(cfg["logging_steps"]) == 0:
            lr = cfg["learning_rate"] * (max_steps - step + 1) / max_steps
            epoch = step / cfg["steps_per_epoch"]
            bar.write(log_line({"loss": loss, "grad_norm": grad_norm, "learning_rate": lr, "epoch": epoch}))
            history.append(
                {"epoch": epoch, "grad_norm": grad_norm, "learning_rate": lr, "loss": loss, "step": step}
            )
        if cfg["save_steps"] and step % int(cfg["save_steps"]) == 0:
            save_checkpoint(cfg, step, history)
    runtime = time.time() - began
    done = max_steps - start_step
    bar.write(
        log_line(
            {
                "train_runtime": runtime,
                "train_samples_per_second": done * cfg["train_batch_size"] / max(runtime, 1e-9),
                "train_steps_per_second": done / max(runtime, 1e-9),
                "train_loss": sum(losses) / len(losses) if losses else 0.0,
                "epoch": max_steps / cfg["steps_per_epoch"],
            }
        )
    )
    bar.close()


def main(argv):
    cfg = settings(argv)
    train(cfg)
    return 0


if __name__ == "__main__":
    # No handler for SIGINT/SIGTERM beyond Python's defaults, like a real training script: Ctrl-C becomes a
    # KeyboardInterrupt traceback and death by SIGINT (130); SIGTERM kills it outright (143).
    sys.exit(main(sys.argv[1:]))
