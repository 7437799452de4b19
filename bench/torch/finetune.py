#!/usr/bin/python3
"""PyTorch baseline of bench/finetune.ts: LoRA fine-tuning steps of a frozen Llama (135M shape by default).

Model: HF LlamaForCausalLM equations (as bench/torch/train_step.py: RMSNorm, RoPE rotate-half, eager GQA
attention with matmul + additive causal mask + float32 softmax, SwiGLU, tied lm_head, cross-entropy on shifted
labels), every base tensor frozen (requires_grad False). LoRA as PEFT's Linear: on each target projection
  y = x Wᵀ + scaling · lora_B(lora_A(dropout(x))),  scaling = alpha / r,
A (r, in) kaiming-uniform(a=√5) = U(−1/√in, 1/√in), B (out, r) zero, both trainable. One step = forward, loss,
backward, clip_grad_norm_(1.0) and AdamW (weight decay 0.01) over the LoRA tensors; gradients are set to None
outside the timed region. Run by the TS bench with OPENBLAS_CORETYPE / OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
(/ OMP_WAIT_POLICY) set. Prints one JSON line: per-step milliseconds (forward+loss, backward, optimizer, total)
and the loss of the first step. Standalone:
  OPENBLAS_CORETYPE=SkylakeX OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
    /usr/bin/python3 bench/torch/finetune.py --threads 1 --iters 2 [--profile]
"""
import argparse
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

from llama_ops import build_llama, rmsnorm, rope_tables, rotate_half

DEFAULT_CONFIG = {"layers": 30, "hidden": 576, "heads": 9, "kvHeads": 3, "headDim": 64, "intermediate": 1536,
                  "vocab": 49152, "eps": 1e-5, "theta": 1e4, "std": 0.02, "batch": 4, "seq": 128,
                  "rank": 32, "alpha": 64, "dropout": 0.1, "lr": 1e-4, "weightDecay": 0.01, "maxGradNorm": 1.0,
                  "targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}

PROJ_KEYS = {"q_proj": "q", "k_proj": "k", "v_proj": "v", "o_proj": "o", "gate_proj": "gate", "up_proj": "up", "down_proj": "down"}


def build(cfg, seed):
    return build_llama(cfg, seed)  # requires_grad False: the base is frozen


def add_lora(cfg, P):
    """LoRA A/B for every target projection: P['layers'][i]['lora'][key] = (A, B)."""
    r = cfg["rank"]
    trainable = []
    for L in P["layers"]:
        L["lora"] = {}
        for name in cfg["targets"]:
            key = PROJ_KEYS[name]
            out_f, in_f = L[key].shape
            bound = 1 / math.sqrt(in_f)
            A = (torch.rand(r, in_f) * 2 - 1).mul_(bound).requires_grad_(True)
            B = torch.zeros(out_f, r).requires_grad_(True)
            L["lora"][key] = (A, B)
            trainable += [A, B]
    return trainable


def forward_loss(cfg, P, ids, cos, sin, mask):
    B, T = ids.shape
    Hq, Hkv, D, eps = cfg["heads"], cfg["kvHeads"], cfg["headDim"], cfg["eps"]
    n_rep = Hq // Hkv
    scaling, p_drop = cfg["alpha"] / cfg["rank"], cfg["dropout"]

    def proj(L, key, x):
        y = F.linear(x, L[key])
        ab = L["lora"].get(key)
        if ab is None:
            return y
        xd = F.dropout(x, p_drop, training=True) if p_drop > 0 else x
        return y + F.linear(F.linear(xd, ab[0]), ab[1]) * scaling  # PEFT: result + lora_B(lora_A(dropout(x))) * scaling

    h = F.embedding(ids, P["embed"])
    for L in P["layers"]:
        x = rmsnorm(h, L["in_norm"], eps)
        q = proj(L, "q", x).view(B, T, Hq, D).transpose(1, 2)
        k = proj(L, "k", x).view(B, T, Hkv, D).transpose(1, 2)
        v = proj(L, "v", x).view(B, T, Hkv, D).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if n_rep > 1:
            k = k.repeat_interleave(n_rep, dim=1)
            v = v.repeat_interleave(n_rep, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(D) + mask
        p = F.softmax(scores, dim=-1, dtype=torch.float32)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, Hq * D)
        h = h + proj(L, "o", o)
        x = rmsnorm(h, L["post_norm"], eps)
        h = h + proj(L, "down", F.silu(proj(L, "gate", x)) * proj(L, "up", x))
    logits = F.linear(rmsnorm(h, P["norm"], eps), P["embed"]).float()
    V = logits.shape[-1]
    return F.cross_entropy(logits[..., :-1, :].contiguous().view(-1, V), ids[..., 1:].contiguous().view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ids", default=None, help="JSON list of B·T token ids (default: seeded random)")
    ap.add_argument("--foreach", choices=["auto", "on", "off"], default="auto", help="AdamW's foreach implementation")
    ap.add_argument("--config", default=json.dumps(DEFAULT_CONFIG), help="JSON model/LoRA/batch config")
    ap.add_argument("--profile", action="store_true", help="print torch's per-op profile of the timed steps to stderr")
    ap.add_argument("--autocast", action="store_true",
                    help="forward and loss under torch.autocast('cpu', dtype=torch.bfloat16) (PyTorch's CPU bf16 mixed precision)")
    a = ap.parse_args()
    cfg = {**DEFAULT_CONFIG, **json.loads(a.config)}
    torch.set_num_threads(a.threads)
    P = build(cfg, a.seed)
    params = add_lora(cfg, P)
    foreach = None if a.foreach == "auto" else a.foreach == "on"
    opt = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weightDecay"], foreach=foreach)
    B, T, V = cfg["batch"], cfg["seq"], cfg["vocab"]
    if a.ids:
        ids = torch.tensor(json.loads(a.ids), dtype=torch.long).view(B, T)
    else:
        ids = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(a.seed + 1))
    cos, sin = rope_tables(T, cfg["headDim"], cfg["theta"])
    mask = torch.full((T, T), float("-inf")).triu(1)
    fwd, bwd, optim, total, losses = [], [], [], [], []
    prof = torch.autograd.profiler.profile(enabled=a.profile)
    for i in range(a.warmup + a.iters):
        if i == a.warmup:
            prof.__enter__()
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.autocast):
            loss = forward_loss(cfg, P, ids, cos, sin, mask)
        losses.append(loss.item())
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if cfg["maxGradNorm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg["maxGradNorm"])
        opt.step()
        t3 = time.perf_counter()
        if i >= a.warmup:
            fwd.append((t1 - t0) * 1e3)
            bwd.append((t2 - t1) * 1e3)
            optim.append((t3 - t2) * 1e3)
            total.append((t3 - t0) * 1e3)
    prof.__exit__(None, None, None)
    if a.profile:
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    print(json.dumps({"fwd_ms": fwd, "bwd_ms": bwd, "opt_ms": optim, "total_ms": total, "first_loss": losses[0],
                      "losses": losses, "trainable": sum(p.numel() for p in params),
                      "autocast": a.autocast, "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
