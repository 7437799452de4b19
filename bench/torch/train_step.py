#!/usr/bin/python3
"""PyTorch baseline of bench/train-step.ts: forward + loss + backward of a small Llama-style model.

The equations follow Hugging Face's LlamaForCausalLM (eager attention): RMSNorm, RoPE rotate-half,
matmul + additive causal mask + float32 softmax (torch 1.13 has no scaled_dot_product_attention),
SwiGLU MLP, untied lm_head, cross-entropy on shifted labels. Run by the TS bench with
OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (/ OMP_WAIT_POLICY) already set.
Prints one JSON line: per-iteration fwd/bwd/total milliseconds and the loss. Standalone, for the op
breakdown torch side: OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  /usr/bin/python3 bench/torch/train_step.py --threads 1 --iters 20 --profile
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from llama_ops import build_llama, rmsnorm, rope_tables, rotate_half


# The shape bench/train-step.ts passes (it always passes --config explicitly).
DEFAULT_CONFIG = {"layers": 2, "hidden": 256, "heads": 4, "kvHeads": 4, "headDim": 64, "intermediate": 688,
                  "vocab": 2048, "seq": 128, "batch": 4, "eps": 1e-5, "theta": 1e4, "std": 0.02}


def build(cfg, seed):
    return build_llama(cfg, seed, weight=lambda t: t.requires_grad_(True), ones=lambda n: torch.ones(n).requires_grad_(True), lm_head=True)


def params(P):
    yield P["embed"]
    yield P["norm"]
    yield P["lm_head"]
    for layer in P["layers"]:
        yield from layer.values()


def forward_loss(cfg, P, ids, cos, sin, mask):
    B, T = ids.shape
    Hq, Hkv, D, eps = cfg["heads"], cfg["kvHeads"], cfg["headDim"], cfg["eps"]
    n_rep = Hq // Hkv
    h = F.embedding(ids, P["embed"])
    for L in P["layers"]:
        x = rmsnorm(h, L["in_norm"], eps)
        q = F.linear(x, L["q"]).view(B, T, Hq, D).transpose(1, 2)
        k = F.linear(x, L["k"]).view(B, T, Hkv, D).transpose(1, 2)
        v = F.linear(x, L["v"]).view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if n_rep > 1:
            k = k.repeat_interleave(n_rep, dim=1)
            v = v.repeat_interleave(n_rep, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(D) + mask
        p = F.softmax(scores, dim=-1, dtype=torch.float32)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, Hq * D)
        h = h + F.linear(o, L["o"])
        x = rmsnorm(h, L["post_norm"], eps)
        h = h + F.linear(F.silu(F.linear(x, L["gate"])) * F.linear(x, L["up"]), L["down"])
    logits = F.linear(rmsnorm(h, P["norm"], eps), P["lm_head"]).float()
    V = logits.shape[-1]
    shift_logits = logits[..., :-1, :].contiguous().view(-1, V)
    shift_labels = ids[..., 1:].contiguous().view(-1)
    return F.cross_entropy(shift_logits, shift_labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--config", default=json.dumps(DEFAULT_CONFIG), help="JSON model/batch config")
    ap.add_argument("--profile", action="store_true", help="print torch's per-op profile of the timed steps to stderr")
    ap.add_argument("--autocast", action="store_true",
                    help="forward and loss under torch.autocast('cpu', dtype=torch.bfloat16) (PyTorch's CPU bf16 mixed precision)")
    a = ap.parse_args()
    cfg = json.loads(a.config)
    torch.set_num_threads(a.threads)
    P = build(cfg, a.seed)
    B, T, V = cfg["batch"], cfg["seq"], cfg["vocab"]
    ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(a.seed + 1))
    cos, sin = rope_tables(T, cfg["headDim"], cfg["theta"])
    mask = torch.full((T, T), float("-inf")).triu(1)
    plist = list(params(P))
    fwd, bwd, total, loss_value = [], [], [], float("nan")
    prof = torch.autograd.profiler.profile(enabled=a.profile)
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            prof.__enter__()
        for p in plist:
            p.grad = None
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast):
            loss = forward_loss(cfg, P, ids, cos, sin, mask)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        loss_value = loss.item()
        if i >= a.warmup:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            total.append((t2 - t0) * 1e3)
    prof.__exit__(None, None, None)
    if a.profile:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    print(json.dumps({"fwd_ms": fwd, "bwd_ms": bwd, "total_ms": total, "loss": loss_value,
                      "autocast": a.autocast, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
