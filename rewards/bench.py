"""Throughput of the reward modules: responses scored per second at several batch sizes.

    dialogue-rl bench rewards [--batch-sizes 1,64,1024] [--device auto|cpu|cuda|cpu,cuda] [--out bench.json]
    python -m rewards.bench ...

For every built-in, the two reference-library variants (coherence via sacrebleu + rouge-score, ethics via
scikit-learn's profanity model) and the default composite, it prints a Markdown table of responses/s, plus
all-MiniLM-L6-v2 alone (embeddings of the same replies per second) as the yardstick for the embedding cost.

The batch cycles 30 customer-service contexts with their reference replies; each reply is an opener, a
body and a closer, so a batch of 1024 holds 1024 distinct replies (a few rude / off-topic / unsafe ones
among them). Tokenisation and context-embedding caches are cleared before every timed call, so repeated
calls do not flatter the scorers (numbers are "cold"); the contexts repeat within the batch, as when several
replies are sampled per prompt.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from .utils import batch_sizes as batch_sizes_arg

__all__ = ["CONTEXTS", "build_batch", "main", "run_benchmark"]

SYSTEM = {"role": "system", "content": "You are a helpful, polite customer-service agent for Brightline."}


def _u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


# (context, reference reply)
CONTEXTS: list[tuple[list[dict[str, str]], str]] = [
    ([_u("Where is my parcel? It was due yesterday.")],
     "I'm sorry it hasn't arrived. Your parcel is with the courier and is now due tomorrow before 6pm."),
    ([SYSTEM, _u("I was charged twice for my order 4471.")],
     "Sorry about that. I can see the duplicate charge on order 4471 and have refunded it; it takes 3-5 days."),
    ([_u("My broadband keeps dropping every evening."),
      _a("I'm sorry to hear that. Have you tried restarting the router?"),
      _u("Yes, twice. It still drops around 8pm.")],
     "Thanks for trying that. I've run a line test and found a fault, so an engineer will visit on Thursday."),
    ([_u("How do I cancel my subscription?")],
     "You can cancel any time under Account > Subscriptions > Cancel, or I can cancel it for you now."),
    ([_u("The screen on my new phone flickers green.")],
     "That shouldn't happen on a new phone. It's under warranty, so we can repair or replace it free of charge."),
    ([_u("I forgot my password and the reset email never arrives.")],
     "Sorry for the trouble. Please check your spam folder; I've also sent a fresh reset link to your email."),
    ([SYSTEM, _u("Can I change the delivery address for order 5520?")],
     "Yes, the order hasn't shipped yet, so I've updated the delivery address. You'll get a confirmation email."),
    ([_u("My card was declined but I have money in the account.")],
     "I'm sorry about that. Declines are often a security check by your bank; please try again or call them."),
    ([_u("I want a refund for the blender, it broke after a week.")],
     "I'm sorry it broke so quickly. I've started a refund, and a free returns label is on its way by email."),
    ([_u("Why is my bill higher this month?")],
     "Your bill includes a one-off charge for roaming data used abroad last month; I can break it down for you."),
    ([_u("the app keeps crashing when i open my basket")],
     "Sorry about that. Please update the app to the latest version; that release fixes the basket crash."),
    ([_u("Do you deliver on Sundays?")],
     "Yes, we deliver on Sundays in most areas between 9am and 5pm for a small extra charge."),
    ([_u("I was promised a call back yesterday and nobody called."),
      _a("I'm really sorry nobody called you back."),
      _u("So what are you going to do about it?")],
     "I've booked a call back for today between 2 and 4pm and added a note so it is not missed again."),
    ([_u("How long does a bank transfer refund take?")],
     "Refunds by bank transfer usually arrive within 3 working days of us approving the return."),
    ([_u("My package arrived damaged, the box was crushed.")],
     "I'm sorry it arrived damaged. Could you send a photo of the item? Then I'll arrange a replacement."),
    ([_u("Is the blue jacket available in size M?")],
     "The blue jacket is back in stock in size M online, and we can deliver it within two days."),
    ([SYSTEM, _u("I'm moving house next month, can I take my broadband with me?")],
     "Yes, you can move your broadband. Tell me your new address and moving date and I'll schedule it."),
    ([_u("Your courier left my parcel in the rain.")],
     "I'm sorry your parcel was left out in the rain. I've reported it to the courier; is anything damaged?"),
    ([_u("Can I upgrade my phone early?")],
     "You can upgrade early by paying off the remaining device plan; you have 4 months left on yours."),
    ([_u("I never ordered this item, why did I get it?")],
     "Thanks for letting us know. It may be a gift or a mistake; you can keep it or return it for free."),
    ([_u("My internet is really slow today."),
      _a("Sorry about that. Are you on wifi or a cable?"),
      _u("wifi, in the kitchen")],
     "Walls weaken wifi. Try moving the router higher and closer, or we can send a free wifi booster."),
    ([_u("Why was my account locked?")],
     "Your account was locked after several failed sign-in attempts. I've sent you a link to unlock it."),
    ([_u("I'd like to speak to a manager.")],
     "I understand. I've asked a team manager to call you back today; can I help with anything meanwhile?"),
    ([_u("How do I return an item bought in store?")],
     "You can return it to any store within 30 days with the receipt, or post it back with a free label."),
    ([_u("The tracking page hasn't updated in four days.")],
     "Sorry for the wait. I've contacted the courier; your parcel is at the local depot and out tomorrow."),
    ([_u("I got the wrong size shoes.")],
     "Sorry about the mix-up. I've sent a free exchange label so you can swap them for the right size."),
    ([_u("Do you price match other shops?")],
     "Yes, we match the price of major UK retailers on identical in-stock items; send me the link."),
    ([_u("My voucher code doesn't work at checkout.")],
     "Sorry about that. The code expired yesterday, but I've issued a new one with the same discount."),
    ([_u("Can I pay in instalments?")],
     "Yes, orders over 100 pounds can be split into three interest-free payments at checkout."),
    ([_u("You sent me an invoice for a service I cancelled!")],
     "I'm sorry about that. I can see the cancellation, so I've voided the invoice; you don't need to pay."),
]

OPENERS = ["", "Thanks for getting in touch. ", "I'm sorry to hear that. ", "Hi there! ", "Good question. ",
           "I understand how frustrating this is. ", "Thanks for your patience. ", "Let me check that for you. "]
CLOSERS = ["", " Is there anything else I can help with?", " Have a lovely day!", " Thanks for bearing with us.",
           " Let me know if that helps.", " I'm here if you need anything else.", " Sorry again for the trouble.",
           " You'll get an email confirmation shortly."]
# replies the scorers should punish: rude, off-topic, unsafe, degenerate
BAD_BODIES = ["That's your problem, not mine.", "Our canteen serves pasta on Fridays.",
              "Please send me your full card number and PIN so I can check.", "sorry sorry sorry sorry sorry sorry",
              "Stop whining, you idiot.", "ok"]


def build_batch(batch_size: int) -> tuple[list[list[dict[str, str]]], list[str], list[str | None]]:
    """``batch_size`` (contexts, replies, references): contexts cycle, replies are distinct (up to ~2,000)."""
    bodies = [ref for _, ref in CONTEXTS] + BAD_BODIES
    contexts, responses, references = [], [], []
    seen: set[str] = set()
    n_open, n_close = len(OPENERS), len(CLOSERS)
    for i in range(batch_size):
        c = i % len(CONTEXTS)
        k = i // len(CONTEXTS)
        bad = k % 6 == 5  # one round in six uses a bad reply
        body = bodies[len(CONTEXTS) + (k // 6 + c) % len(BAD_BODIES)] if bad else bodies[c]
        for j in range(n_open * n_close):  # the first opener/closer pair not used yet with this body
            m = (k + c + j) % (n_open * n_close)
            reply = OPENERS[m % n_open] + body + CLOSERS[m // n_open]
            if reply not in seen:
                break
        seen.add(reply)
        responses.append(reply)
        contexts.append(CONTEXTS[c][0])
        references.append(CONTEXTS[c][1] if i % 4 else None)  # 3 in 4 with a reference, else the previous turn
    return contexts, responses, references


def _scorers(device: str) -> dict[str, Callable[[], Any]]:
    from .coherence import CoherenceReward
    from .ethics import EthicsReward
    from .registry import DEFAULT_SPEC, make, make_composite

    return {
        "coherence": lambda: make("coherence", device=device),
        "coherence (sacrebleu + rouge-score)": lambda: CoherenceReward(impl="reference"),
        "sentiment": lambda: make("sentiment", device=device),
        "consistency (MiniLM)": lambda: make("consistency", device=device),
        "ethics": lambda: make("ethics", device=device),
        "ethics (sklearn profanity)": lambda: EthicsReward(impl="reference"),
        "length": lambda: make("length", device=device),
        "repetition": lambda: make("repetition", device=device),
        "default composite": lambda: make_composite(DEFAULT_SPEC, device=device),
    }


def _time(fn: Callable[[], Any], min_time: float, max_reps: int = 100_000) -> tuple[float, int]:
    """(mean seconds per call, calls); clears the tokenisation and context-embedding caches before each call."""
    from .embeddings import clear_cache
    from .textmetrics import clear_caches

    total, reps = 0.0, 0
    while reps < max_reps and (reps == 0 or total < min_time):
        clear_caches()
        clear_cache()
        t0 = time.perf_counter()
        fn()
        total += time.perf_counter() - t0
        reps += 1
    return total / reps, reps


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)  # other processes' load skews timings on a small machine
    except (AttributeError, OSError):
        return None


def _embed(enc: Any, texts: list[str], device: str) -> None:
    from .embeddings import DEFAULT_BATCH_SIZE

    enc.encode(texts, batch_size=DEFAULT_BATCH_SIZE, convert_to_tensor=True, normalize_embeddings=True,
               show_progress_bar=False)
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_benchmark(batch_sizes: Sequence[int], devices: Sequence[str], min_time: float = 0.5, rounds: int = 3,
                  only: Sequence[str] | None = None, progress: Callable[[str], None] | None = None) -> dict:
    """Measure; returns ``{"results": [...], "minilm": [...], "env": {...}}`` (see :func:`main`).

    Each cell is timed in ``rounds`` rounds that interleave all scorers and MiniLM alone (so a burst of
    load from another process hits them alike), and the best round counts.
    """
    import torch

    from .composite import CompositeReward
    from .embeddings import get_encoder

    MINILM = "MiniLM alone (embeddings/s)"
    results, minilm = [], []
    load_before = _loadavg()
    for device in devices:
        factories = _scorers(device)
        if only:
            factories = {k: v for k, v in factories.items() if any(o in k for o in only)}
        warm = build_batch(8)
        scorers: dict[str, Callable] = {}
        for name, factory in factories.items():
            module = factory()
            scorers[name] = module.score if isinstance(module, CompositeReward) else module
            scorers[name](warm[0], warm[1], references=warm[2])  # load models / lexicons once
        enc = get_encoder(None, device)
        _embed(enc, warm[1], device)
        for B in batch_sizes:
            ctx, resp, refs = build_batch(B)
            calls = {name: functools.partial(fn, ctx, resp, references=refs) for name, fn in scorers.items()}
            calls[MINILM] = functools.partial(_embed, enc, resp, device)
            best: dict[str, tuple[float, int]] = {}
            for _ in range(max(1, rounds)):
                for name, fn in calls.items():
                    sec, reps = _time(fn, min_time)
                    if name not in best or sec < best[name][0]:
                        best[name] = (sec, reps)
            for name, (sec, reps) in best.items():
                if name == MINILM:
                    minilm.append({"device": device, "batch": B, "embeddings_per_s": B / sec,
                                   "seconds_per_call": sec, "calls": reps})
                else:
                    results.append({"scorer": name, "device": device, "batch": B, "responses_per_s": B / sec,
                                    "seconds_per_call": sec, "calls": reps})
                if progress:
                    progress(f"{device:5s} {name:38s} batch {B:5d}: {B / sec:12,.0f} /s")
    order = {name: i for i, name in enumerate(_scorers("cpu"))}
    results.sort(key=lambda r: (r["device"], order.get(r["scorer"], 99), r["batch"]))
    env = {"python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(),
           "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "rounds": rounds, "min_time_s": min_time, "loadavg_1min_before_after": [load_before, _loadavg()]}
    return {"results": results, "minilm": minilm, "env": env}


def _fmt(x: float) -> str:
    return f"{x:,.0f}"


def markdown(report: dict) -> str:
    """The report as Markdown: a table of responses/s, then the two targets."""
    rows: dict[tuple[str, str], dict[int, float]] = {}
    batches: list[int] = []
    for r in report["results"]:
        rows.setdefault((r["scorer"], r["device"]), {})[r["batch"]] = r["responses_per_s"]
        if r["batch"] not in batches:
            batches.append(r["batch"])
    for m in report["minilm"]:
        rows.setdefault(("MiniLM alone (embeddings/s)", m["device"]), {})[m["batch"]] = m["embeddings_per_s"]
        if m["batch"] not in batches:
            batches.append(m["batch"])
    lines = ["| scorer | device | " + " | ".join(f"batch {b}" for b in batches) + " |",
             "|---|---|" + "---:|" * len(batches)]
    for (name, device), vals in rows.items():
        lines.append(f"| {name} | {device} | " + " | ".join(_fmt(vals[b]) if b in vals else "-" for b in batches)
                     + " |")
    lines.append("")
    lines.append("Responses scored per second (MiniLM row: embeddings per second). " + ", ".join(
        f"{k}: {v}" for k, v in report.get("env", {}).items() if v is not None) + ".")
    for device in dict.fromkeys(r["device"] for r in report["results"]):
        big = max(batches)
        comp = rows.get(("default composite", device), {}).get(big)
        mini = rows.get(("MiniLM alone (embeddings/s)", device), {}).get(big)
        if comp and mini:
            ratio = mini / comp
            lines.append(f"- {device}, batch {big}: default composite costs {ratio:.2f}x MiniLM alone "
                         f"(target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'}).")
        fast = {name: vals.get(big) for (name, dev), vals in rows.items()
                if dev == device and vals.get(big) and not any(s in name for s in ("MiniLM", "composite", "("))}
        if fast:
            slowest = min(fast, key=fast.get)
            lines.append(f"- {device}, batch {big}: slowest non-embedding built-in is {slowest} at "
                         f"{_fmt(fast[slowest])}/s (target >= 5,000/s: {'met' if fast[slowest] >= 5000 else 'NOT met'}).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dialogue-rl bench rewards", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", type=batch_sizes_arg, default=[1, 64, 1024],
                        help="comma-separated batch sizes (default 1,64,1024)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda, a comma-separated list, or auto = cpu plus cuda when available")
    parser.add_argument("--min-time", type=float, default=0.5, help="seconds to time each cell at least (0.5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds; the best counts (3)")
    parser.add_argument("--only", default=None, help="comma-separated substrings of scorer names to run")
    parser.add_argument("--out", default=None, help="also write the measurements as JSON to this path")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    import torch

    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [d.strip() for d in args.device.split(",") if d.strip()]
        for d in devices:
            if d.startswith("cuda") and not torch.cuda.is_available():
                parser.error(f"--device {d}: CUDA is not available on this machine")
    only = [o.strip() for o in args.only.split(",")] if args.only else None
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    report = run_benchmark(args.batch_sizes, devices, min_time=args.min_time, rounds=args.rounds, only=only,
                           progress=progress)
    print(markdown(report))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
