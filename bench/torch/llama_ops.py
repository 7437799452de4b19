"""Llama pieces shared by the PyTorch baselines (written from the HF modeling equations, no transformers).

Imported by the scripts beside it (Python puts a script's own directory on sys.path).
"""
import torch


def build_llama(cfg, seed, weight=lambda t: t, ones=torch.ones, lm_head=False):
    """Random Llama parameters: weights N(0, std²) passed through `weight` (e.g. requires_grad, bf16 rounding),
    norms from `ones`; an untied `lm_head` when asked. Draw order: embed, lm_head, then per layer q k v o gate up down."""
    torch.manual_seed(seed)
    C, I, V, D = cfg["hidden"], cfg["intermediate"], cfg["vocab"], cfg["headDim"]
    Hq, Hkv, std = cfg["heads"], cfg["kvHeads"], cfg["std"]

    def normal(*shape):
        return weight(torch.randn(*shape) * std)

    P = {"embed": normal(V, C), "norm": ones(C), "layers": []}
    if lm_head:
        P["lm_head"] = normal(V, C)
    for _ in range(cfg["layers"]):
        P["layers"].append({
            "in_norm": ones(C), "post_norm": ones(C),
            "q": normal(Hq * D, C), "k": normal(Hkv * D, C), "v": normal(Hkv * D, C), "o": normal(C, Hq * D),
            "gate": normal(I, C), "up": normal(I, C), "down": normal(C, I),
        })
    return P


def rmsnorm(x, w, eps):
    """HF's LlamaRMSNorm: computed in float32, cast back to x's dtype."""
    if x.dtype == torch.float32:
        return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    xf = x.float()
    return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(n, D, theta):
    """cos, sin tables (n, D) for positions 0..n-1."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2).float() / D))
    freqs = torch.outer(torch.arange(n).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()
