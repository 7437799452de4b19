#!/usr/bin/python3
"""PyTorch baseline of bench/generation.ts: prefill and greedy decode with a KV cache, eager, batch 1.

The equations follow Hugging Face's LlamaForCausalLM (RMSNorm, RoPE rotate-half, GQA attention with
float32 softmax, SwiGLU MLP, tied lm_head). The loop is written for speed, as a baseline must be its best
self: torch.inference_mode() (or no_grad, --grad-mode), a preallocated KV cache (Hkv, max_len, D) per layer
written in place, GQA by grouping the query heads of a KV head (no repeat_kv copies), logits of the last
position only in the prefill (as transformers' generate does with logits_to_keep=1), and for the one-row
decode products a choice of formulations measured in the same process (--variants):
  mv           torch.mv(W, x) on 1-D vectors
  linear       F.linear(x[None], W), HF's formulation
  fused        torch.mv on concatenated [q; k; v] and [gate; up] weights (fewer, larger calls; same bytes)
  bf16         the model in torch.bfloat16 (weights, activations, cache; HF's `model.to(torch.bfloat16)`:
               RMSNorm and softmax computed in float32 and cast back), products with torch.mv
  bf16-linear  the same with F.linear (torch routes bf16 F.linear to oneDNN)
The weights are drawn in float32 and rounded to bfloat16 values, so the float32 variants run a bf16 checkpoint
upcast at load (transformers' default dtype) and the bf16 variants the same checkpoint in bf16 — as lonas does.
Run by the TS bench with OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (/ OMP_WAIT_POLICY) set.
Prints one JSON line: per-variant tokens/s samples of decode (--mode decode) or prefill (--mode prefill).
Standalone: OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
  /usr/bin/python3 bench/torch/generation.py --threads 1 --mode decode --new-tokens 16 [--profile]
"""
import argparse
import contextlib
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from llama_ops import build_llama, rmsnorm, rope_tables, rotate_half

# SmolLM-135M's shape (bench/generation.ts always passes --config explicitly).
DEFAULT_CONFIG = {"layers": 30, "hidden": 576, "heads": 9, "kvHeads": 3, "headDim": 64, "intermediate": 1536,
                  "vocab": 49152, "eps": 1e-5, "theta": 1e4, "std": 0.02}


def build(cfg, seed):
    # bfloat16 values (a BF16 checkpoint), held in float32
    return build_llama(cfg, seed, weight=lambda t: t.to(torch.bfloat16).to(torch.float32))


def to_dtype(P, dtype):
    """A copy of the parameters in `dtype` (the `bf16` variants: the model in torch.bfloat16)."""
    return {"embed": P["embed"].to(dtype), "norm": P["norm"].to(dtype),
            "layers": [{k: v.to(dtype) for k, v in L.items()} for L in P["layers"]]}


def add_fused(P):
    """Concatenated copies for the `fused` variant (built once, outside the timing)."""
    for L in P["layers"]:
        L["qkv"] = torch.cat([L["q"], L["k"], L["v"]], 0).contiguous()
        L["gate_up"] = torch.cat([L["gate"], L["up"]], 0).contiguous()


class Cache:
    def __init__(self, cfg, max_len, dtype=torch.float32):
        Hkv, D = cfg["kvHeads"], cfg["headDim"]
        self.k = [torch.zeros(Hkv, max_len, D, dtype=dtype) for _ in range(cfg["layers"])]
        self.v = [torch.zeros(Hkv, max_len, D, dtype=dtype) for _ in range(cfg["layers"])]
        self.length = 0


def prefill(cfg, P, ids, cache, cos, sin):
    """ids (T,) → logits (V,) of the last position; fills cache positions [0, T)."""
    T = ids.shape[0]
    Hq, Hkv, D, eps = cfg["heads"], cfg["kvHeads"], cfg["headDim"], cfg["eps"]
    rep = Hq // Hkv
    c, s = cos[:T], sin[:T]  # (T, D)
    h = F.embedding(ids, P["embed"])  # (T, C)
    mask = torch.full((T, T), float("-inf"), dtype=h.dtype).triu(1).repeat(rep, 1)  # (rep·T, T), rows ordered (r, t)
    for i, L in enumerate(P["layers"]):
        x = rmsnorm(h, L["in_norm"], eps)
        q = F.linear(x, L["q"]).view(T, Hq, D).transpose(0, 1)  # (Hq, T, D)
        k = F.linear(x, L["k"]).view(T, Hkv, D).transpose(0, 1)  # (Hkv, T, D)
        v = F.linear(x, L["v"]).view(T, Hkv, D).transpose(0, 1)
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
        cache.k[i][:, :T] = k
        cache.v[i][:, :T] = v
        qg = q.reshape(Hkv, rep * T, D)  # query heads of one KV head stacked: (Hkv, rep·T, D)
        scores = torch.matmul(qg, k.transpose(1, 2)) / math.sqrt(D) + mask  # (Hkv, rep·T, T)
        p = F.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
        o = torch.matmul(p, v).view(Hq, T, D).transpose(0, 1).reshape(T, Hq * D)
        h = h + F.linear(o, L["o"])
        x = rmsnorm(h, L["post_norm"], eps)
        h = h + F.linear(F.silu(F.linear(x, L["gate"])) * F.linear(x, L["up"]), L["down"])
    cache.length = T
    return F.linear(rmsnorm(h[-1], P["norm"], eps), P["embed"])  # (V,) — last position only


def decode_step(cfg, P, token, cache, cos, sin, variant):
    """One token → logits (V,); appends its key/value at position cache.length."""
    Hq, Hkv, D, eps, I = cfg["heads"], cfg["kvHeads"], cfg["headDim"], cfg["eps"], cfg["intermediate"]
    rep = Hq // Hkv
    pos = cache.length
    c, s = cos[pos], sin[pos]  # (D,)
    n = pos + 1
    scale = 1 / math.sqrt(D)
    if variant in ("linear", "bf16-linear"):
        def lin(x, w):
            return F.linear(x.unsqueeze(0), w).squeeze(0)
    else:
        def lin(x, w):
            return torch.mv(w, x)
    h = P["embed"][token]  # (C,)
    for i, L in enumerate(P["layers"]):
        x = rmsnorm(h, L["in_norm"], eps)
        if variant == "fused":
            qkv = torch.mv(L["qkv"], x)
            q, k, v = qkv[:Hq * D], qkv[Hq * D:(Hq + Hkv) * D], qkv[(Hq + Hkv) * D:]
        else:
            q, k, v = lin(x, L["q"]), lin(x, L["k"]), lin(x, L["v"])
        q = q.view(Hq, D)
        k = k.view(Hkv, D)
        q = q * c + rotate_half(q) * s
        k = k * c + rotate_half(k) * s
        cache.k[i][:, pos] = k
        cache.v[i][:, pos] = v.view(Hkv, D)
        K, Vv = cache.k[i][:, :n], cache.v[i][:, :n]  # (Hkv, n, D)
        scores = torch.matmul(q.view(Hkv, rep, D), K.transpose(1, 2)) * scale  # (Hkv, rep, n)
        p = F.softmax(scores, dim=-1, dtype=torch.float32).to(Vv.dtype)
        o = torch.matmul(p, Vv).reshape(Hq * D)  # (Hkv, rep, D) → (Hq·D,)
        h = h + lin(o, L["o"])
        x = rmsnorm(h, L["post_norm"], eps)
        if variant == "fused":
            gu = torch.mv(L["gate_up"], x)
            a = F.silu(gu[:I]) * gu[I:]
        else:
            a = F.silu(lin(x, L["gate"])) * lin(x, L["up"])
        h = h + lin(a, L["down"])
    cache.length = n
    return lin(rmsnorm(h, P["norm"], eps), P["embed"])  # (V,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--mode", choices=["prefill", "decode"], required=True)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--new-tokens", type=int, default=32, help="decode: tokens generated after the prompt")
    ap.add_argument("--prompt", default=None, help="JSON list of prompt token ids (default: 128 seeded random ids)")
    ap.add_argument("--variants", default="mv,linear", help="decode formulations to measure (mv, linear, fused, bf16, bf16-linear)")
    ap.add_argument("--grad-mode", choices=["inference", "no_grad"], default="inference")
    ap.add_argument("--config", default=json.dumps(DEFAULT_CONFIG), help="JSON model config")
    ap.add_argument("--profile", action="store_true", help="print torch's per-op profile of the timed part to stderr")
    a = ap.parse_args()
    cfg = json.loads(a.config)
    torch.set_num_threads(a.threads)
    variants = [v for v in a.variants.split(",") if v] if a.mode == "decode" else []
    for v in variants:
        if v not in ("mv", "linear", "fused", "bf16", "bf16-linear"):
            sys.exit(f"unknown variant {v}")
    P = build(cfg, a.seed)
    if "fused" in variants:
        add_fused(P)
    P16 = to_dtype(P, torch.bfloat16) if any(v.startswith("bf16") for v in variants) else None
    if a.prompt:
        ids = torch.tensor(json.loads(a.prompt), dtype=torch.long)
    else:
        ids = torch.randint(0, cfg["vocab"], (128,), generator=torch.Generator().manual_seed(a.seed + 1))
    T, N = ids.shape[0], a.new_tokens
    max_len = T + N
    cos, sin = rope_tables(max_len, cfg["headDim"], cfg["theta"])
    cos16, sin16 = cos.to(torch.bfloat16), sin.to(torch.bfloat16)  # HF casts the tables to the activations' dtype
    grad_ctx = torch.inference_mode if a.grad_mode == "inference" else torch.no_grad
    samples = {v: [] for v in variants} if a.mode == "decode" else {"prefill": []}
    tokens = {}
    prof = torch.autograd.profiler.profile(enabled=a.profile)
    with grad_ctx():
        for it in range(a.warmup + a.iters):
            if it == a.warmup:
                prof.__enter__()
            if a.mode == "prefill":
                cache = Cache(cfg, max_len)
                t0 = time.perf_counter()
                logits = prefill(cfg, P, ids, cache, cos, sin)
                int(torch.argmax(logits))
                dt = time.perf_counter() - t0
                if it >= a.warmup:
                    samples["prefill"].append(T / dt)
                continue
            for v in (variants if it % 2 == 0 else variants[::-1]):  # alternate the variants' order
                b16 = v.startswith("bf16")
                Pv, cv, sv = (P16, cos16, sin16) if b16 else (P, cos, sin)
                cache = Cache(cfg, max_len, torch.bfloat16 if b16 else torch.float32)
                tok = int(torch.argmax(prefill(cfg, Pv, ids, cache, cv, sv)))
                out = [tok]
                t0 = time.perf_counter()
                for _ in range(N):
                    tok = int(torch.argmax(decode_step(cfg, Pv, tok, cache, cv, sv, v)))
                    out.append(tok)
                dt = time.perf_counter() - t0
                tokens[v] = out
                if it >= a.warmup:
                    samples[v].append(N / dt)
    prof.__exit__(None, None, None)
    if a.profile:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    # the float32 formulations compute the same numbers; bf16 rounds every activation, so it may pick other tokens
    same = len({json.dumps(t) for v, t in tokens.items() if not v.startswith("bf16")}) <= 1
    print(json.dumps({"tok_s": samples, "variants_agree": same, "first_tokens": next(iter(tokens.values()), [])[:8],
                      "first_tokens_by_variant": {v: t[:8] for v, t in tokens.items()},
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "grad_mode": a.grad_mode}))


if __name__ == "__main__":
    main()
