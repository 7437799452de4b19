#!/usr/bin/python3
"""Golden-fixture generator for lonas (PyTorch reference values).

Regenerate (from the repository root):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 test/golden/gen/generate.py

Writes, under test/golden/fixtures/:
  ops.safetensors           every op: inputs, upstream gradient, output, input gradients
  llama_tied.safetensors    2-layer Llama-style model, tied embeddings
  llama_untied.safetensors  2-layer Llama-style model, separate lm_head

Pinned to Debian's PyTorch 1.13 (float32, one thread, deterministic algorithms).
Every op / model is seeded on its own (torch.manual_seed with a fixed seed per
entry), so adding an entry never changes the values of the others.
See README.md beside this file for every tensor name and metadata key.
"""

import os

# Must be set before torch (and its BLAS) is loaded; the documented command sets it too.
os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import json
import math
import struct
import sys
import zlib
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures"))

PINNED_TORCH = "1.13"
MAX_FIXTURE_BYTES = 1_000_000
MAX_TOTAL_BYTES = 2_000_000


def setup_torch():
    if not torch.__version__.startswith(PINNED_TORCH):
        print(
            f"WARNING: torch {torch.__version__} is not the pinned {PINNED_TORCH}.x; "
            "fixtures may differ in the last bits from the committed ones.",
            file=sys.stderr,
        )
    if os.environ.get("OPENBLAS_CORETYPE") != "SkylakeX":
        print(
            "WARNING: OPENBLAS_CORETYPE is not SkylakeX; matmul results (llama fixtures) "
            "may differ in the last bits from the committed ones.",
            file=sys.stderr,
        )
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    torch.use_deterministic_algorithms(True)


def seed_for(name):
    """A fixed, order-independent seed for one fixture entry."""
    seed = zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF
    torch.manual_seed(seed)
    return seed


# ---------------------------------------------------------------------------
# safetensors writer / reader (own implementation, no safetensors package)
# ---------------------------------------------------------------------------

_DTYPES = {
    # safetensors dtype -> (numpy little-endian dtype)
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}


def _to_numpy(t):
    """torch tensor -> (safetensors dtype, little-endian contiguous numpy array)."""
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.float32:
        return "F32", t.numpy().astype("<f4", copy=False)
    if t.dtype in (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8):
        a = t.to(torch.int64).numpy()
        assert a.min(initial=0) >= -(2**31) and a.max(initial=0) < 2**31
        return "I32", a.astype("<i4")
    if t.dtype == torch.float64:
        raise TypeError("float64 tensors are not written to fixtures (float32 only)")
    raise TypeError(f"unsupported dtype {t.dtype}")


def encode_safetensors(tensors, metadata):
    """tensors: OrderedDict name -> torch tensor; metadata: dict str -> str. Returns bytes."""
    header = OrderedDict()
    blobs = []
    offset = 0
    for name, t in tensors.items():
        assert name != "__metadata__"
        dtype, arr = _to_numpy(t)
        data = arr.tobytes(order="C")
        header[name] = {
            "dtype": dtype,
            "shape": [int(s) for s in t.shape],
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    for k, v in metadata.items():
        assert isinstance(k, str) and isinstance(v, str), f"metadata {k!r} must be str -> str"
    header["__metadata__"] = OrderedDict(metadata)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def decode_safetensors(buf):
    """Returns (OrderedDict name -> numpy array, metadata dict). Validates the layout."""
    (n,) = struct.unpack_from("<Q", buf, 0)
    assert n % 8 == 0, "header length not padded to 8"
    header = json.loads(buf[8 : 8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    data = buf[8 + n :]
    metadata = header.pop("__metadata__", {})
    out = OrderedDict()
    expect = 0
    for name, info in header.items():
        dt = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        assert begin == expect, f"{name}: tensors not packed in header order"
        count = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        assert end - begin == count * dt.itemsize, f"{name}: size mismatch"
        out[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(info["shape"])
        expect = end
    assert expect == len(data), "trailing bytes after the last tensor"
    return out, metadata


# ---------------------------------------------------------------------------
# Reference math (HF Llama equations)
# ---------------------------------------------------------------------------


def rmsnorm(x, w, eps):
    # HF LlamaRMSNorm (all float32 here)
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    d = x.shape[-1] // 2
    return torch.cat((-x[..., d:], x[..., :d]), dim=-1)


def rope_cos_sin(positions, dim, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2).float() / dim))
    freqs = torch.outer(positions.float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # (T, D)


def apply_rope(x, cos, sin):
    """x: (B, T, H, D); cos/sin: (T, D), broadcast over B and H."""
    c = cos[:, None, :]
    s = sin[:, None, :]
    return x * c + rotate_half(x) * s


def causal_mask(tq, tk):
    """True where key j is visible to query i: j <= i + (tk - tq)."""
    i = torch.arange(tq)[:, None]
    j = torch.arange(tk)[None, :]
    return j <= i + (tk - tq)


def attention(q, k, v):
    """q: (B, Tq, Hq, D), k/v: (B, Tk, Hkv, D) -> (B, Tq, Hq, D). Causal GQA."""
    _, tq, hq, d = q.shape
    tk, hkv = k.shape[1], k.shape[2]
    n_rep = hq // hkv
    qh = q.transpose(1, 2)  # (B, Hq, Tq, D)
    kh = k.transpose(1, 2).repeat_interleave(n_rep, dim=1)  # (B, Hq, Tk, D)
    vh = v.transpose(1, 2).repeat_interleave(n_rep, dim=1)
    scores = (qh @ kh.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.masked_fill(~causal_mask(tq, tk), float("-inf"))
    # softmax in float32 (HF upcasts); float64 stays float64 for the cross-check re-run
    p = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    out = p @ vh  # (B, Hq, Tq, D)
    return out.transpose(1, 2).contiguous()


# ---------------------------------------------------------------------------
# Fixture 1: ops
# ---------------------------------------------------------------------------


def leaf(t):
    return t.detach().clone().requires_grad_(True)


def build_ops():
    T = OrderedDict()
    M = OrderedDict()

    def put(op, **tensors):
        for k, v in tensors.items():
            T[f"{op}.{k}"] = v.detach().clone()

    # linear
    seed_for("linear")
    x, w, b = leaf(torch.randn(5, 7)), leaf(torch.randn(6, 7)), leaf(torch.randn(6))
    y = x @ w.T + b
    gy = torch.randn_like(y)
    y.backward(gy)
    put("linear", x=x, w=w, b=b, gy=gy, y=y, gx=x.grad, gw=w.grad, gb=b.grad)

    # linear_nobias (3-D input)
    seed_for("linear_nobias")
    x, w = leaf(torch.randn(2, 3, 7)), leaf(torch.randn(4, 7))
    y = x @ w.T
    gy = torch.randn_like(y)
    y.backward(gy)
    put("linear_nobias", x=x, w=w, gy=gy, y=y, gx=x.grad, gw=w.grad)

    # bmm
    seed_for("bmm")
    a, b = leaf(torch.randn(3, 4, 5)), leaf(torch.randn(3, 5, 6))
    y = torch.bmm(a, b)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("bmm", a=a, b=b, gy=gy, y=y, ga=a.grad, gb=b.grad)

    # softmax (scaled, no mask)
    seed_for("softmax")
    scale = 0.5
    x = leaf(torch.randn(2, 3, 5, 5))
    y = torch.softmax(scale * x, dim=-1)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("softmax", x=x, gy=gy, y=y, gx=x.grad)
    M["softmax.scale"] = repr(scale)

    # softmax_causal (Tq=4 queries after a KV cache of 2: Tk=6)
    seed_for("softmax_causal")
    scale = 0.35
    x = leaf(torch.randn(2, 3, 4, 6))
    logits = (scale * x).masked_fill(~causal_mask(4, 6), float("-inf"))
    y = torch.softmax(logits, dim=-1)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("softmax_causal", x=x, gy=gy, y=y, gx=x.grad)
    M["softmax_causal.scale"] = repr(scale)

    # cross_entropy with ignore_index
    seed_for("cross_entropy")
    logits = leaf(torch.randn(6, 11))
    targets = torch.randint(0, 11, (6,))
    targets[2] = -100
    loss = F.cross_entropy(logits, targets, ignore_index=-100)
    loss.backward()
    put("cross_entropy", logits=logits, targets=targets.to(torch.int32), loss=loss, glogits=logits.grad)
    M["cross_entropy.ignore_index"] = "-100"

    # rmsnorm
    seed_for("rmsnorm")
    eps = 1e-5
    x = leaf(torch.randn(4, 3, 8))
    w = leaf(1 + 0.1 * torch.randn(8))
    y = rmsnorm(x, w, eps)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("rmsnorm", x=x, w=w, gy=gy, y=y, gx=x.grad, gw=w.grad)
    M["rmsnorm.eps"] = repr(eps)

    # silu
    seed_for("silu")
    x = leaf(torch.randn(37))
    y = F.silu(x)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("silu", x=x, gy=gy, y=y, gx=x.grad)

    # swiglu
    seed_for("swiglu")
    g, u = leaf(torch.randn(5, 9)), leaf(torch.randn(5, 9))
    y = F.silu(g) * u
    gy = torch.randn_like(y)
    y.backward(gy)
    put("swiglu", g=g, u=u, gy=gy, y=y, gg=g.grad, gu=u.grad)

    # rope (two variants)
    for op, shape, positions, theta in (
        ("rope", (2, 5, 3, 8), [0, 1, 2, 3, 4], 10000.0),
        ("rope_theta1e6", (1, 5, 2, 16), [3, 4, 5, 6, 7], 1000000.0),
    ):
        seed_for(op)
        pos = torch.tensor(positions, dtype=torch.int32)
        x = leaf(torch.randn(*shape))
        cos, sin = rope_cos_sin(pos, shape[-1], theta)
        y = apply_rope(x, cos, sin)
        gy = torch.randn_like(y)
        y.backward(gy)
        put(op, x=x, positions=pos, gy=gy, y=y, gx=x.grad, cos=cos, sin=sin)
        M[f"{op}.theta"] = repr(theta)

    # embedding (repeated ids -> accumulated gradient rows)
    seed_for("embedding")
    w = leaf(torch.randn(10, 6))
    ids = torch.tensor([[1, 3, 3, 9], [0, 1, 1, 1]], dtype=torch.int64)
    y = F.embedding(ids, w)
    gy = torch.randn_like(y)
    y.backward(gy)
    put("embedding", w=w, ids=ids.to(torch.int32), gy=gy, y=y, gw=w.grad)

    # attention (causal GQA, no cache) and attention_cache (3 queries over 7 keys)
    for op, (b_, tq, tk) in (("attention", (2, 5, 5)), ("attention_cache", (1, 3, 7))):
        seed_for(op)
        hq, hkv, d = 4, 2, 8
        q = leaf(torch.randn(b_, tq, hq, d))
        k = leaf(torch.randn(b_, tk, hkv, d))
        v = leaf(torch.randn(b_, tk, hkv, d))
        y = attention(q, k, v)
        gy = torch.randn_like(y)
        y.backward(gy)
        put(op, q=q, k=k, v=v, gy=gy, y=y, gq=q.grad, gk=k.grad, gv=v.grad)
        M[f"{op}.scale"] = repr(1.0 / math.sqrt(d))

    # adamw: three steps on a single parameter
    seed_for("adamw")
    lr, betas, eps, wd = 1e-2, (0.9, 0.999), 1e-8, 0.01
    p0 = torch.randn(4, 5)
    gs = [torch.randn(4, 5) for _ in range(3)]
    p = leaf(p0)
    opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd, foreach=False)
    after = []
    for g in gs:
        opt.zero_grad()
        p.grad = g.clone()
        opt.step()
        after.append(p.detach().clone())
    put("adamw", p0=p0, g1=gs[0], g2=gs[1], g3=gs[2], p1=after[0], p2=after[1], p3=after[2])
    M["adamw.lr"] = repr(lr)
    M["adamw.beta1"] = repr(betas[0])
    M["adamw.beta2"] = repr(betas[1])
    M["adamw.eps"] = repr(eps)
    M["adamw.weight_decay"] = repr(wd)

    # sum / mean
    seed_for("sum_mean")
    x = torch.randn(3, 4)
    put("sum_mean", x=x, sum=x.sum(), mean=x.mean())

    # mul_add
    seed_for("mul_add")
    a, b = leaf(torch.randn(3, 4)), leaf(torch.randn(3, 4))
    y = a * b + a
    gy = torch.randn_like(y)
    y.backward(gy)
    put("mul_add", a=a, b=b, gy=gy, y=y, ga=a.grad, gb=b.grad)

    return T, M


# ---------------------------------------------------------------------------
# Fixtures 2/3: 2-layer Llama-style model
# ---------------------------------------------------------------------------


def llama_config(tied):
    return OrderedDict(
        vocab_size=96,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        intermediate_size=80,
        rms_norm_eps=1e-5 if tied else 1e-6,
        rope_theta=10000.0 if tied else 1000000.0,
        tie_word_embeddings=bool(tied),
    )


def llama_param_shapes(cfg):
    V, C, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    shapes = OrderedDict()
    shapes["model.embed_tokens.weight"] = (V, C)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "input_layernorm.weight"] = (C,)
        shapes[p + "self_attn.q_proj.weight"] = (Hq * D, C)
        shapes[p + "self_attn.k_proj.weight"] = (Hkv * D, C)
        shapes[p + "self_attn.v_proj.weight"] = (Hkv * D, C)
        shapes[p + "self_attn.o_proj.weight"] = (C, Hq * D)
        shapes[p + "post_attention_layernorm.weight"] = (C,)
        shapes[p + "mlp.gate_proj.weight"] = (I, C)
        shapes[p + "mlp.up_proj.weight"] = (I, C)
        shapes[p + "mlp.down_proj.weight"] = (C, I)
    shapes["model.norm.weight"] = (C,)
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    return shapes


def llama_init(cfg):
    params = OrderedDict()
    for name, shape in llama_param_shapes(cfg).items():
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            t = 1 + 0.1 * torch.randn(*shape)
        elif name == "model.embed_tokens.weight":
            t = 0.5 * torch.randn(*shape)
        else:
            t = 0.08 * torch.randn(*shape)
        params[name] = t
    return params


def llama_forward(cfg, P, ids):
    """ids: (B, T) int64 -> logits (B, T, V). P: name -> tensor (any float dtype)."""
    B, T = ids.shape
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    cos, sin = rope_cos_sin(torch.arange(T), D, cfg["rope_theta"])
    dt = P["model.norm.weight"].dtype
    cos, sin = cos.to(dt), sin.to(dt)
    h = F.embedding(ids, P["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = rmsnorm(h, P[p + "input_layernorm.weight"], eps)
        q = (a @ P[p + "self_attn.q_proj.weight"].T).view(B, T, Hq, D)
        k = (a @ P[p + "self_attn.k_proj.weight"].T).view(B, T, Hkv, D)
        v = (a @ P[p + "self_attn.v_proj.weight"].T).view(B, T, Hkv, D)
        q = apply_rope(q, cos, sin)
        k = apply_rope(k, cos, sin)
        o = attention(q, k, v).reshape(B, T, Hq * D)
        h = h + o @ P[p + "self_attn.o_proj.weight"].T
        m = rmsnorm(h, P[p + "post_attention_layernorm.weight"], eps)
        gate = m @ P[p + "mlp.gate_proj.weight"].T
        up = m @ P[p + "mlp.up_proj.weight"].T
        h = h + (F.silu(gate) * up) @ P[p + "mlp.down_proj.weight"].T
    h = rmsnorm(h, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return h @ head.T


def causal_lm_loss(logits, labels, V):
    return F.cross_entropy(
        logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100
    )


ADAMW_STEPS = 10
LLAMA_ADAMW = OrderedDict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01)
FINAL_NAMES = ("model.norm.weight", "model.layers.1.mlp.down_proj.weight")


def build_llama(tied):
    fixture = "llama_tied" if tied else "llama_untied"
    cfg = llama_config(tied)
    V = cfg["vocab_size"]
    seed_for(fixture)
    init = llama_init(cfg)
    B, T = 2, 9
    ids = torch.randint(0, V, (B, T))
    labels = ids.clone()
    labels[1, 7] = -100

    P = OrderedDict((n, leaf(t)) for n, t in init.items())
    logits = llama_forward(cfg, P, ids)
    loss = causal_lm_loss(logits, labels, V)
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in P.items())

    # AdamW training on the same batch, from the same initial parameters.
    P2 = OrderedDict((n, leaf(t)) for n, t in init.items())
    hp = LLAMA_ADAMW
    opt = torch.optim.AdamW(
        list(P2.values()),
        lr=hp["lr"],
        betas=(hp["beta1"], hp["beta2"]),
        eps=hp["eps"],
        weight_decay=hp["weight_decay"],
        foreach=False,
    )
    losses = []
    for _ in range(ADAMW_STEPS):
        opt.zero_grad()
        l = causal_lm_loss(llama_forward(cfg, P2, ids), labels, V)
        l.backward()
        losses.append(l.detach().clone())
        opt.step()

    Tn = OrderedDict()
    for n, t in init.items():
        Tn["param." + n] = t
    Tn["input_ids"] = ids.to(torch.int32)
    Tn["labels"] = labels.to(torch.int32)
    Tn["logits"] = logits.detach()
    Tn["loss"] = loss.detach()
    for n, g in grads.items():
        Tn["grad." + n] = g
    Tn["adamw_losses"] = torch.stack(losses)
    for n in FINAL_NAMES:
        Tn["final." + n] = P2[n].detach().clone()

    M = OrderedDict()
    M["config"] = json.dumps(cfg, separators=(",", ":"))
    M["adamw.steps"] = str(ADAMW_STEPS)
    for k, v in hp.items():
        M["adamw." + k] = repr(v)
    M["ignore_index"] = "-100"
    return fixture, Tn, M, (cfg, init, ids, labels)


# ---------------------------------------------------------------------------
# Main + self-check
# ---------------------------------------------------------------------------


def common_metadata():
    return OrderedDict(
        torch_version=torch.__version__,
        generator="test/golden/gen/generate.py",
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
        format_note="float32 little-endian; integer tensors I32",
    )


def build_all():
    out = OrderedDict()
    T, M = build_ops()
    meta = common_metadata()
    meta.update(M)
    out["ops"] = (T, meta, None)
    for tied in (True, False):
        name, Tn, Mn, extra = build_llama(tied)
        meta = common_metadata()
        meta.update(Mn)
        out[name] = (Tn, meta, extra)
    return out


def self_check(fixtures, blobs):
    total = 0
    for name, (tensors, meta, extra) in fixtures.items():
        path = os.path.join(FIXTURES, name + ".safetensors")
        with open(path, "rb") as f:
            buf = f.read()
        assert buf == blobs[name], f"{path}: file on disk differs from what was encoded"
        total += len(buf)
        assert len(buf) < MAX_FIXTURE_BYTES, f"{path}: {len(buf)} bytes is too large"
        got, gmeta = decode_safetensors(buf)
        assert list(got.keys()) == list(tensors.keys()), f"{path}: tensor names/order differ"
        assert dict(gmeta) == dict(meta), f"{path}: metadata differs"
        for k, t in tensors.items():
            exp = t.detach().numpy()
            a = got[k]
            assert tuple(a.shape) == tuple(t.shape), f"{path}:{k}: shape"
            assert np.array_equal(a.astype(exp.dtype), exp), f"{path}:{k}: values do not round-trip"
        print(f"  {name}.safetensors: {len(buf)} bytes, {len(got)} tensors, round-trip ok")
    assert total < MAX_TOTAL_BYTES, f"fixtures total {total} bytes is too large"
    print(f"  total: {total} bytes")


def cross_checks(fixtures):
    """Independent float64 re-derivations of a few entries; prints f32-vs-f64 errors."""
    T = fixtures["ops"][0]

    # attention: naive per-(batch, head, query) loop in float64
    for op in ("attention", "attention_cache"):
        q, k, v, y = (T[f"{op}.{n}"].double() for n in ("q", "k", "v", "y"))
        B, Tq, Hq, D = q.shape
        Tk, Hkv = k.shape[1], k.shape[2]
        ref = torch.zeros_like(q)
        for b in range(B):
            for h in range(Hq):
                kv = h // (Hq // Hkv)
                for i in range(Tq):
                    n_vis = i + (Tk - Tq) + 1
                    s = torch.stack([q[b, i, h] @ k[b, j, kv] for j in range(n_vis)]) / math.sqrt(D)
                    p = torch.exp(s - s.max())
                    p = p / p.sum()
                    ref[b, i, h] = sum(p[j] * v[b, j, kv] for j in range(n_vis))
        err = (ref - y).abs().max().item()
        assert err < 1e-5, f"{op}: naive attention disagrees ({err})"
        print(f"  {op}: naive float64 loop max |diff| = {err:.2e}")

    # cross_entropy: manual log-softmax in float64
    lg = T["cross_entropy.logits"].double()
    tg = T["cross_entropy.targets"].long()
    keep = tg != -100
    lse = torch.logsumexp(lg, dim=-1)
    nll = lse[keep] - lg[keep].gather(1, tg[keep][:, None])[:, 0]
    err = abs(nll.mean().item() - T["cross_entropy.loss"].item())
    assert err < 1e-5, f"cross_entropy disagrees ({err})"
    print(f"  cross_entropy: manual float64 |diff| = {err:.2e}")

    # adamw: the textbook update in float64
    hp = dict(lr=1e-2, b1=0.9, b2=0.999, eps=1e-8, wd=0.01)
    p = T["adamw.p0"].double().clone()
    m = torch.zeros_like(p)
    v = torch.zeros_like(p)
    for t in (1, 2, 3):
        g = T[f"adamw.g{t}"].double()
        p = p * (1 - hp["lr"] * hp["wd"])
        m = hp["b1"] * m + (1 - hp["b1"]) * g
        v = hp["b2"] * v + (1 - hp["b2"]) * g * g
        mhat = m / (1 - hp["b1"] ** t)
        vhat = v / (1 - hp["b2"] ** t)
        p = p - hp["lr"] * mhat / (vhat.sqrt() + hp["eps"])
        err = (p - T[f"adamw.p{t}"].double()).abs().max().item()
        assert err < 1e-5, f"adamw step {t} disagrees ({err})"
    print(f"  adamw: textbook float64 max |diff| after 3 steps = {err:.2e}")

    # llama: float64 re-run of the same forward/backward (tolerance guidance for TS tests)
    for name in ("llama_tied", "llama_untied"):
        tensors, _, (cfg, init, ids, labels) = fixtures[name]
        P = OrderedDict((n, t.double().requires_grad_(True)) for n, t in init.items())
        logits = llama_forward(cfg, P, ids)
        loss = causal_lm_loss(logits, labels, cfg["vocab_size"])
        loss.backward()
        el = (logits - tensors["logits"].double()).abs().max().item()
        eloss = abs(loss.item() - tensors["loss"].item())
        eg = 0.0
        gscale = 0.0
        for n, p in P.items():
            g32 = tensors["grad." + n].double()
            eg = max(eg, (p.grad - g32).abs().max().item())
            gscale = max(gscale, g32.abs().max().item())
        assert el < 1e-4 and eloss < 1e-5 and eg < 1e-4 * max(1.0, gscale), name
        losses = tensors["adamw_losses"]
        assert abs(losses[0].item() - tensors["loss"].item()) < 1e-6
        assert losses[-1].item() < losses[0].item(), f"{name}: AdamW did not reduce the loss"
        print(
            f"  {name}: f32 vs f64 max |diff| logits {el:.2e}, loss {eloss:.2e}, grads {eg:.2e} "
            f"(max |grad| {gscale:.2e}); loss {losses[0].item():.4f} -> {losses[-1].item():.4f} "
            f"in {ADAMW_STEPS} AdamW steps"
        )


def main():
    setup_torch()
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    fixtures = build_all()
    blobs = OrderedDict((n, encode_safetensors(t, m)) for n, (t, m, _) in fixtures.items())

    # Determinism: building everything a second time must give identical bytes.
    again = build_all()
    for n, (t, m, _) in again.items():
        assert encode_safetensors(t, m) == blobs[n], f"{n}: generation is not deterministic"

    os.makedirs(FIXTURES, exist_ok=True)
    for n, buf in blobs.items():
        path = os.path.join(FIXTURES, n + ".safetensors")
        with open(path, "wb") as f:
            f.write(buf)
        print(f"wrote {os.path.relpath(path)}")

    print("self-check:")
    self_check(fixtures, blobs)
    print("cross-checks:")
    cross_checks(fixtures)
    print("ok")


if __name__ == "__main__":
    main()
