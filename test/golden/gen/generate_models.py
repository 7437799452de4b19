#!/usr/bin/python3
"""Golden Hugging Face model directories for lonas (PyTorch reference logits).

Regenerate (from the repository root):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 test/golden/gen/generate_models.py

Writes, for each case, test/golden/fixtures/models/<case>/:
  config.json                          as transformers' save_pretrained writes it
  model.safetensors                    (or model-0000k-of-0000n.safetensors shards
  model.safetensors.index.json          plus this index, for the `sharded` case)
  expected.safetensors                 input_ids (I32, [B, T]) and logits (F32, [B, T, V])

The model files imitate what a user downloads from the Hub: safetensors files laid out
like the `safetensors` library writes them (tensors sorted by name, `{"format": "pt"}`
metadata), sharding and index like `save_pretrained(max_shard_size=...)`, config.json
with sorted keys and 2-space indent.  No transformers / safetensors package is used:
the HF modeling equations (Llama, Qwen2, Mistral; default, linear and llama3 RoPE) are
written out below, reusing the helpers of generate.py.

Pinned to Debian's PyTorch 1.13 (float32, one thread, deterministic algorithms), like
generate.py; that script's fixtures are not touched.  See README.md beside this file.
"""

import os

# Must be set before torch (and its BLAS) is loaded; the documented command sets it too.
os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import json
import math
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ beside the generators
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (setup_torch, seed_for, rmsnorm, rotate_half, decoder)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_ROOT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "models"))
GENERATOR = "test/golden/gen/generate_models.py"

MAX_TOTAL_BYTES = 1_500_000
B = 2

# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

COMMON = OrderedDict(vocab_size=128, hidden_size=48, num_hidden_layers=2)


def llama_cfg(version="4.46.3", **kw):
    """LlamaConfig.to_json_string(use_diff=True) of transformers 4.46 (keys it writes)."""
    c = OrderedDict(
        architectures=["LlamaForCausalLM"],
        attention_bias=False,
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        hidden_act="silu",
        initializer_range=0.02,
        max_position_embeddings=2048,
        mlp_bias=False,
        model_type="llama",
        pretraining_tp=1,
        rope_scaling=None,
        torch_dtype="float32",
        transformers_version=version,
        use_cache=True,
    )
    c.update(COMMON)
    c.update(kw)
    return c


def llama_cfg_legacy(**kw):
    """LlamaConfig as transformers 4.36 wrote it: no head_dim / mlp_bias keys, and
    rope_scaling in the old {"type": ..., "factor": ...} form."""
    c = llama_cfg(version="4.36.2", **kw)
    del c["mlp_bias"]
    assert "head_dim" not in c
    return c


def qwen2_cfg(**kw):
    """Qwen2Config of transformers 4.46 (no head_dim key: head_dim = hidden / heads)."""
    c = OrderedDict(
        architectures=["Qwen2ForCausalLM"],
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        hidden_act="silu",
        initializer_range=0.02,
        max_position_embeddings=32768,
        max_window_layers=2,
        model_type="qwen2",
        rope_scaling=None,
        sliding_window=4096,
        torch_dtype="float32",
        transformers_version="4.46.3",
        use_cache=True,
        use_sliding_window=False,
    )
    c.update(COMMON)
    c.update(kw)
    return c


def mistral_cfg(**kw):
    """MistralConfig of transformers 4.46 (head_dim key present, like Mistral-Nemo)."""
    c = OrderedDict(
        architectures=["MistralForCausalLM"],
        attention_dropout=0.0,
        bos_token_id=1,
        eos_token_id=2,
        hidden_act="silu",
        initializer_range=0.02,
        max_position_embeddings=32768,
        model_type="mistral",
        torch_dtype="float32",
        transformers_version="4.46.3",
        use_cache=True,
    )
    c.update(COMMON)
    c.update(kw)
    return c


GQA = dict(num_attention_heads=6, num_key_value_heads=2, head_dim=8, intermediate_size=96,
           tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-6)

# name -> (config, storage, T, description)
#   storage: ("single", "F32"|"BF16") or ("sharded", max_shard_size_bytes)
CASES = OrderedDict()
CASES["llama_gqa"] = (
    llama_cfg(**GQA),
    ("single", "F32"),
    12,
    "Llama, GQA 6 query heads / 2 KV heads, head_dim 8, untied lm_head, rope_theta 1e4, "
    "eps 1e-6, F32 single model.safetensors",
)
CASES["llama_tied_theta1e6"] = (
    llama_cfg(num_attention_heads=4, num_key_value_heads=4, head_dim=12, intermediate_size=40,
              tie_word_embeddings=True, rope_theta=1000000.0, rms_norm_eps=1e-5),
    ("single", "F32"),
    12,
    "Llama, MHA 4 heads / 4 KV heads, head_dim 12, tied embeddings (no lm_head.weight "
    "stored), rope_theta 1e6, eps 1e-5",
)
CASES["llama3_rope"] = (
    llama_cfg(num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=40,
              tie_word_embeddings=False, rope_theta=500000.0, rms_norm_eps=1e-5,
              max_position_embeddings=128,
              rope_scaling=OrderedDict(factor=8.0, high_freq_factor=4.0, low_freq_factor=1.0,
                                       original_max_position_embeddings=64,
                                       rope_type="llama3")),
    ("single", "F32"),
    40,
    "Llama 3.1-style rope_scaling (rope_type llama3, factor 8, low/high_freq_factor 1/4, "
    "original_max_position_embeddings 64: one unchanged, one smoothed and six divided frequencies), rope_theta 5e5, 4 heads / 2 KV heads, head_dim 16 "
    "(heads*head_dim 64 != hidden 48), untied, T=40",
)
CASES["linear_rope"] = (
    llama_cfg_legacy(num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
                     tie_word_embeddings=True, rope_theta=10000.0, rms_norm_eps=1e-5,
                     max_position_embeddings=4096,
                     rope_scaling=OrderedDict(factor=2.0, type="linear")),
    ("single", "F32"),
    20,
    "Llama, legacy transformers-4.36 config: rope_scaling {type: linear, factor: 2.0} "
    "(inv_freq / 2), no head_dim key (head_dim = 48/4 = 12), 4 heads / 2 KV heads, tied "
    "embeddings, T=20",
)
CASES["qwen2_bias"] = (
    qwen2_cfg(num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
              tie_word_embeddings=False, rope_theta=1000000.0, rms_norm_eps=1e-6),
    ("single", "F32"),
    12,
    "Qwen2: q/k/v projections with bias, o_proj without; 4 heads / 2 KV heads, no head_dim "
    "key (head_dim = 12), rope_theta 1e6, eps 1e-6, untied",
)
CASES["mistral_head_dim"] = (
    mistral_cfg(num_attention_heads=4, num_key_value_heads=1, head_dim=16, intermediate_size=40,
                tie_word_embeddings=False, rope_theta=1000000.0, rms_norm_eps=1e-5,
                sliding_window=None),
    ("single", "F32"),
    12,
    "Mistral: head_dim 16 override with hidden 48 and 4 heads (q_proj [64,48], o_proj "
    "[48,64]), 1 KV head (MQA), sliding_window null, rope_theta 1e6, untied",
)
CASES["bf16_storage"] = (
    llama_cfg(**dict(GQA, torch_dtype="bfloat16")),
    ("single", "BF16"),
    12,
    "like llama_gqa but every weight stored as BF16 (torch_dtype bfloat16); expected logits "
    "are a float32 forward of the BF16 weights upcast to F32",
)
CASES["sharded"] = (
    llama_cfg(**GQA),
    ("sharded", 90_000),
    12,
    "like llama_gqa, weights split by save_pretrained(max_shard_size='90KB') into 3 shards "
    "model-0000k-of-00003.safetensors + model.safetensors.index.json",
)


def head_dim_of(cfg):
    # transformers >= 4.45: getattr(config, "head_dim", None) or hidden // heads
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def has_qkv_bias(cfg):
    return cfg["model_type"] == "qwen2" or bool(cfg.get("attention_bias", False))


# ---------------------------------------------------------------------------
# Parameters (HF state_dict order) and init
# ---------------------------------------------------------------------------


def param_shapes(cfg):
    """OrderedDict name -> shape, in the order of HF model.state_dict()."""
    V, C, I = cfg["vocab_size"], cfg["hidden_size"], cfg["intermediate_size"]
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    bias = has_qkv_bias(cfg)
    s = OrderedDict()
    s["model.embed_tokens.weight"] = (V, C)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        for proj, out in (("q_proj", Hq * D), ("k_proj", Hkv * D), ("v_proj", Hkv * D)):
            s[p + f"self_attn.{proj}.weight"] = (out, C)
            if bias:
                s[p + f"self_attn.{proj}.bias"] = (out,)
        s[p + "self_attn.o_proj.weight"] = (C, Hq * D)
        s[p + "mlp.gate_proj.weight"] = (I, C)
        s[p + "mlp.up_proj.weight"] = (I, C)
        s[p + "mlp.down_proj.weight"] = (C, I)
        s[p + "input_layernorm.weight"] = (C,)
        s[p + "post_attention_layernorm.weight"] = (C,)
    s["model.norm.weight"] = (C,)
    if not cfg["tie_word_embeddings"]:
        s["lm_head.weight"] = (V, C)
    return s


def init_params(cfg):
    P = OrderedDict()
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm.weight"):
            t = 1 + 0.1 * torch.randn(*shape)
        elif name == "model.embed_tokens.weight":
            t = 0.5 * torch.randn(*shape)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(*shape)
        else:
            t = 0.08 * torch.randn(*shape)
        P[name] = t
    return P


# ---------------------------------------------------------------------------
# HF equations
# ---------------------------------------------------------------------------


def rope_type_of(cfg):
    rs = cfg.get("rope_scaling")
    if rs is None:
        return "default"
    return rs.get("rope_type", rs.get("type", "default"))  # BC: "type" is the old key


def rope_inv_freq(cfg, dtype=torch.float32):
    """ROPE_INIT_FUNCTIONS[rope_type](config) of transformers (modeling_rope_utils.py).

    In float32 this reproduces transformers op for op; dtype=float64 is the reference run."""
    D = head_dim_of(cfg)
    base = cfg["rope_theta"]
    # _compute_default_rope_parameters
    inv_freq = 1.0 / (base ** (torch.arange(0, D, 2, dtype=torch.int64).to(dtype) / D))
    rtype = rope_type_of(cfg)
    rs = cfg.get("rope_scaling")
    if rtype == "default":
        return inv_freq
    if rtype == "linear":
        # _compute_linear_scaling_rope_parameters: inv_freq /= factor
        return inv_freq / rs["factor"]
    if rtype == "llama3":
        # _compute_llama3_parameters, verbatim
        factor = rs["factor"]
        low_freq_factor = rs["low_freq_factor"]
        high_freq_factor = rs["high_freq_factor"]
        old_context_len = rs["original_max_position_embeddings"]
        low_freq_wavelen = old_context_len / low_freq_factor
        high_freq_wavelen = old_context_len / high_freq_factor
        wavelen = 2 * math.pi / inv_freq
        inv_freq_llama = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
        smooth_factor = (old_context_len / wavelen - low_freq_factor) / (
            high_freq_factor - low_freq_factor
        )
        smoothed_inv_freq = (1 - smooth_factor) * inv_freq_llama / factor + smooth_factor * inv_freq_llama
        is_medium_freq = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
        return torch.where(is_medium_freq, smoothed_inv_freq, inv_freq_llama)
    raise ValueError(f"rope_type {rtype} not implemented")


def rope_cos_sin(cfg, T, dtype=torch.float32):
    """LlamaRotaryEmbedding.forward: freqs = inv_freq x positions, emb = cat(freqs, freqs).
    attention_scaling is 1.0 for default / linear / llama3."""
    inv_freq = rope_inv_freq(cfg, dtype)
    freqs = torch.outer(torch.arange(T).to(dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()  # (T, D)


def apply_rope(x, cos, sin):
    """x: (B, H, T, D) (HF layout); q * cos + rotate_half(q) * sin."""
    return x * cos[None, None] + G.rotate_half(x) * sin[None, None]


def repeat_kv(x, n_rep):
    """HF repeat_kv: (B, Hkv, T, D) -> (B, Hkv * n_rep, T, D), kv head j -> heads j*n_rep.."""
    b, hkv, t, d = x.shape
    if n_rep == 1:
        return x
    return x[:, :, None, :, :].expand(b, hkv, n_rep, t, d).reshape(b, hkv * n_rep, t, d)


def forward(cfg, P, ids, dtype=torch.float32):
    """HF *ForCausalLM forward (eager attention), all in `dtype`. ids: (B, T) -> (B, T, V)."""
    Bn, T = ids.shape
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
    eps = cfg["rms_norm_eps"]
    scaling = D ** -0.5
    cos, sin = rope_cos_sin(cfg, T, dtype)
    mask = G.causal_mask(T, T)
    P = OrderedDict((k, v.to(dtype)) for k, v in P.items())

    def lin(x, name):
        y = x @ P[name + ".weight"].T
        if name + ".bias" in P:
            y = y + P[name + ".bias"]
        return y

    h = F.embedding(ids, P["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = G.rmsnorm(h, P[p + "input_layernorm.weight"], eps)
        q = lin(a, p + "self_attn.q_proj").view(Bn, T, Hq, D).transpose(1, 2)
        k = lin(a, p + "self_attn.k_proj").view(Bn, T, Hkv, D).transpose(1, 2)
        v = lin(a, p + "self_attn.v_proj").view(Bn, T, Hkv, D).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k, v = repeat_kv(k, Hq // Hkv), repeat_kv(v, Hq // Hkv)
        w = (q @ k.transpose(2, 3)) * scaling
        w = w.masked_fill(~mask, float("-inf"))
        w = torch.softmax(w, dim=-1, dtype=torch.promote_types(dtype, torch.float32))
        o = (w @ v).transpose(1, 2).reshape(Bn, T, Hq * D)
        h = h + lin(o, p + "self_attn.o_proj")
        m = G.rmsnorm(h, P[p + "post_attention_layernorm.weight"], eps)
        h = h + lin(F.silu(lin(m, p + "mlp.gate_proj")) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj")
    h = G.rmsnorm(h, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return h @ head.T


# ---------------------------------------------------------------------------
# Writers (safetensors library layout, transformers JSON layout)
# ---------------------------------------------------------------------------

ST_DTYPES = {"F32": np.dtype("<f4"), "BF16": np.dtype("<u2"), "I32": np.dtype("<i4")}
# safetensors' Dtype enum order (derive(Ord)); the library sorts by descending dtype, then name.
ST_DTYPE_RANK = {"BF16": 8, "I32": 9, "F32": 11}


def tensor_bytes(t, st_dtype):
    t = t.detach().contiguous()
    if st_dtype == "F32":
        assert t.dtype == torch.float32
        return t.numpy().astype("<f4", copy=False).tobytes()
    if st_dtype == "BF16":
        assert t.dtype == torch.bfloat16
        return t.view(torch.int16).numpy().astype("<i2", copy=False).tobytes()
    if st_dtype == "I32":
        assert t.dtype == torch.int32
        return t.numpy().astype("<i4", copy=False).tobytes()
    raise TypeError(st_dtype)


def st_dtype_of(t):
    return {torch.float32: "F32", torch.bfloat16: "BF16", torch.int32: "I32"}[t.dtype]


def encode_safetensors_like_lib(tensors, metadata):
    """Bytes of safetensors.torch.save_file(tensors, metadata=metadata): tensors sorted by
    (descending dtype, name), header `__metadata__` first, compact JSON padded with spaces to
    a multiple of 8."""
    items = sorted(tensors.items(), key=lambda kv: (-ST_DTYPE_RANK[st_dtype_of(kv[1])], kv[0]))
    header = OrderedDict()
    if metadata is not None:
        header["__metadata__"] = OrderedDict(sorted(metadata.items()))
    blobs, off = [], 0
    for name, t in items:
        dt = st_dtype_of(t)
        data = tensor_bytes(t, dt)
        header[name] = OrderedDict(
            dtype=dt, shape=[int(s) for s in t.shape], data_offsets=[off, off + len(data)]
        )
        blobs.append(data)
        off += len(data)
    hjson = json.dumps(header, separators=(",", ":"), ensure_ascii=True).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    return struct.pack("<Q", len(hjson)) + hjson + b"".join(blobs)


def decode_safetensors(buf):
    """-> (OrderedDict name -> float64/int64 numpy array, dtype names, metadata). Validates."""
    (n,) = struct.unpack_from("<Q", buf, 0)
    assert n % 8 == 0
    header = json.loads(buf[8 : 8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    data = buf[8 + n :]
    metadata = header.pop("__metadata__", {})
    out, dts, expect = OrderedDict(), {}, 0
    for name, info in header.items():
        dt = ST_DTYPES[info["dtype"]]
        b0, b1 = info["data_offsets"]
        assert b0 == expect
        cnt = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        assert b1 - b0 == cnt * dt.itemsize
        a = np.frombuffer(data[b0:b1], dtype=dt).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
        dts[name] = info["dtype"]
        expect = b1
    assert expect == len(data)
    return out, dts, metadata


def hf_json(obj):
    """transformers: json.dumps(..., indent=2, sort_keys=True) + "\\n"."""
    return (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode("utf-8")


def shard_state_dict(state, max_shard_size):
    """huggingface_hub split_torch_state_dict_into_shards (used by save_pretrained)."""
    shards, cur, cur_size, total = [], OrderedDict(), 0, 0
    for k, t in state.items():
        size = t.numel() * t.element_size()
        if size > max_shard_size:
            total += size
            shards.append(OrderedDict([(k, t)]))
            continue
        if cur_size + size > max_shard_size:
            shards.append(cur)
            cur, cur_size = OrderedDict(), 0
        cur[k] = t
        cur_size += size
        total += size
    if cur:
        shards.append(cur)
    return shards, total


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------


def common_metadata():
    return OrderedDict(
        torch_version=torch.__version__,
        generator=GENERATOR,
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
    )


def build_case(name):
    cfg, storage, T, desc = CASES[name]
    G.seed_for("models/" + name)
    init = init_params(cfg)
    ids = torch.randint(0, cfg["vocab_size"], (B, T))

    kind, arg = storage
    if kind == "single" and arg == "BF16":
        stored = OrderedDict((k, v.to(torch.bfloat16)) for k, v in init.items())
        weights = OrderedDict((k, v.float()) for k, v in stored.items())  # load-time upcast
    else:
        stored = init
        weights = init

    with torch.no_grad():
        logits = forward(cfg, weights, ids, torch.float32)
        logits64 = forward(cfg, weights, ids, torch.float64)
    err64 = (logits.double() - logits64).abs().max().item()

    files = OrderedDict()
    files["config.json"] = hf_json(cfg)
    if kind == "single":
        files["model.safetensors"] = encode_safetensors_like_lib(stored, {"format": "pt"})
    else:
        shards, total = shard_state_dict(stored, arg)
        n = len(shards)
        weight_map = {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            files[fname] = encode_safetensors_like_lib(shard, {"format": "pt"})
            for k in shard:
                weight_map[k] = fname
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        files["model.safetensors.index.json"] = hf_json(index)

    meta = common_metadata()
    meta["case"] = name
    meta["description"] = desc
    meta["positions"] = f"0..{T - 1}"
    meta["logits_note"] = (
        "float32 forward of the HF equations (eager attention); BF16-stored weights are "
        "upcast to F32 first" if arg == "BF16" else
        "float32 forward of the HF equations (eager attention)"
    )
    meta["f64_max_abs_diff"] = f"{err64:.3e}"
    expected = OrderedDict(input_ids=ids.to(torch.int32), logits=logits.contiguous())
    files["expected.safetensors"] = encode_safetensors_like_lib(expected, meta)
    info = dict(cfg=cfg, T=T, err64=err64, logits64=logits64, weights=weights, ids=ids, logits=logits, storage=storage)
    return files, info


def build_all():
    return OrderedDict((name, build_case(name)) for name in CASES)


# ---------------------------------------------------------------------------
# Independent check: reload each directory like a user would, numpy float64 loops
# ---------------------------------------------------------------------------


def load_dir(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    names = {}
    if os.path.exists(idx):
        index = json.load(open(idx))
        files = sorted(set(index["weight_map"].values()))
        size = 0
        for f in files:
            t, dts, meta = decode_safetensors(open(os.path.join(d, f), "rb").read())
            assert meta == {"format": "pt"}
            for k, a in t.items():
                assert index["weight_map"][k] == f, k
                names[k] = a
                size += a.size * (2 if dts[k] == "BF16" else 4)
        assert size == index["metadata"]["total_size"]
        assert set(names) == set(index["weight_map"])
    else:
        t, dts, meta = decode_safetensors(open(os.path.join(d, "model.safetensors"), "rb").read())
        assert meta == {"format": "pt"}
        want = "BF16" if cfg["torch_dtype"] == "bfloat16" else "F32"
        assert set(dts.values()) == {want}
        names.update(t)
    return cfg, OrderedDict((k, v.astype(np.float64)) for k, v in names.items())


def numpy_forward64(cfg, W, ids):
    """Per-head / per-query loops in float64, written from the HF equations separately."""
    V, C = cfg["vocab_size"], cfg["hidden_size"]
    Hq, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or C // Hq
    eps, base = cfg["rms_norm_eps"], cfg["rope_theta"]
    inv = 1.0 / base ** (np.arange(0, D, 2) / D)
    rs = cfg.get("rope_scaling")
    if rs:
        rt = rs.get("rope_type", rs.get("type"))
        if rt == "linear":
            inv = inv / rs["factor"]
        elif rt == "llama3":
            f, lo, hi, old = (rs[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                               "original_max_position_embeddings"))
            out = []
            for x in inv:
                wl = 2 * math.pi / x
                if wl < old / hi:
                    out.append(x)
                elif wl > old / lo:
                    out.append(x / f)
                else:
                    s = (old / wl - lo) / (hi - lo)
                    out.append((1 - s) * x / f + s * x)
            inv = np.array(out)
        else:
            raise ValueError(rt)

    def norm(x, w):
        return w * x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)

    def rope(x, t):  # x: (D,)
        ang = t * inv
        c, s = np.cos(ang), np.sin(ang)
        x1, x2 = x[: D // 2], x[D // 2 :]
        return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s])

    def lin(x, n):
        y = x @ W[n + ".weight"].T
        return y + W[n + ".bias"] if n + ".bias" in W else y

    out = np.zeros(ids.shape + (V,))
    for b in range(ids.shape[0]):
        T = ids.shape[1]
        h = W["model.embed_tokens.weight"][ids[b]]
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            a = norm(h, W[p + "input_layernorm.weight"])
            q = lin(a, p + "self_attn.q_proj").reshape(T, Hq, D)
            k = lin(a, p + "self_attn.k_proj").reshape(T, Hkv, D)
            v = lin(a, p + "self_attn.v_proj").reshape(T, Hkv, D)
            o = np.zeros((T, Hq, D))
            for hh in range(Hq):
                kv = hh // (Hq // Hkv)
                for t in range(T):
                    qt = rope(q[t, hh], t)
                    s = np.array([qt @ rope(k[j, kv], j) for j in range(t + 1)]) / math.sqrt(D)
                    e = np.exp(s - s.max())
                    o[t, hh] = (e / e.sum()) @ v[: t + 1, kv]
            h = h + lin(o.reshape(T, Hq * D), p + "self_attn.o_proj")
            m = norm(h, W[p + "post_attention_layernorm.weight"])
            g = lin(m, p + "mlp.gate_proj")
            h = h + lin(g / (1 + np.exp(-g)) * lin(m, p + "mlp.up_proj"), p + "mlp.down_proj")
        h = norm(h, W["model.norm.weight"])
        head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
        out[b] = h @ head.T
    return out


def check_case(name, files, info):
    d = os.path.join(OUT_ROOT, name)
    for fname, buf in files.items():
        with open(os.path.join(d, fname), "rb") as f:
            assert f.read() == buf, f"{name}/{fname}: file on disk differs"
    assert sorted(os.listdir(d)) == sorted(files), f"{name}: stray files"
    cfg, W = load_dir(d)
    assert cfg == json.loads(json.dumps(info["cfg"]))
    if "lm_head.weight" in W:
        assert not cfg["tie_word_embeddings"]
    else:
        assert cfg["tie_word_embeddings"]
    exp, _, meta = decode_safetensors(files["expected.safetensors"])
    assert list(exp) == ["logits", "input_ids"]
    ids = exp["input_ids"].astype(np.int64)
    T = info["T"]
    assert ids.shape == (B, T) and exp["logits"].shape == (B, T, cfg["vocab_size"])
    assert np.array_equal(exp["logits"], info["logits"].numpy())
    # F32 files must also parse with generate.py's reader (layout cross-check)
    if info["storage"] != ("single", "BF16"):
        for fname, buf in files.items():
            if fname.endswith(".safetensors"):
                G.decode_safetensors(buf)
    ref = numpy_forward64(cfg, W, ids)
    errnp = float(np.abs(ref - exp["logits"]).max())
    refs = float(np.abs(ref - info["logits64"].numpy()).max())
    assert info["err64"] < 1e-4 and errnp < 1e-4 and refs < 1e-9, (name, info["err64"], errnp, refs)
    return errnp, refs, float(np.abs(exp["logits"]).max())


def sensitivity(built):
    """How far the logits move if a loader ignores what each special case tests."""
    with torch.no_grad():
        for name in ("llama3_rope", "linear_rope"):
            cfg, info = CASES[name][0], built[name][1]
            plain = dict(cfg, rope_scaling=None)
            d = (forward(plain, info["weights"], info["ids"]) - info["logits"]).abs().max().item()
            print(f"  {name}: inv_freq default {rope_inv_freq(plain).numpy().tolist()}")
            print(f"  {name}: inv_freq scaled  {rope_inv_freq(cfg).numpy().tolist()}")
            print(f"  {name}: ignoring rope_scaling moves logits by up to {d:.3f}")
        info = built["bf16_storage"][1]
        G.seed_for("models/bf16_storage")
        f32 = init_params(CASES["bf16_storage"][0])
        d = (forward(CASES["bf16_storage"][0], f32, info["ids"]) - info["logits"]).abs().max().item()
        print(f"  bf16_storage: same seed with unrounded F32 weights differs by up to {d:.3f}")


def main():
    G.setup_torch()
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    built = build_all()
    again = build_all()
    for name in built:
        assert built[name][0] == again[name][0], f"{name}: generation is not deterministic"

    total = 0
    for name, (files, _) in built.items():
        d = os.path.join(OUT_ROOT, name)
        os.makedirs(d, exist_ok=True)
        for stale in set(os.listdir(d)) - set(files):
            os.remove(os.path.join(d, stale))
        for fname, buf in files.items():
            with open(os.path.join(d, fname), "wb") as f:
                f.write(buf)
            total += len(buf)
        print(f"wrote {os.path.relpath(d)}/: " + ", ".join(f"{f} {len(b)}" for f, b in files.items()))
    assert total < MAX_TOTAL_BYTES, f"total {total} bytes is too large"
    print(f"total: {total} bytes")

    print("checks (float32 logits vs float64 torch re-run / vs independent numpy float64 "
          "loops on the reloaded directory):")
    for name, (files, info) in built.items():
        errnp, refs, mx = check_case(name, files, info)
        print(f"  {name}: T={info['T']} max|logit| {mx:.2f}; f64 torch {info['err64']:.2e}, "
              f"f64 numpy {errnp:.2e} (torch f64 vs numpy f64 {refs:.1e})")
    print("sensitivity:")
    sensitivity(built)
    print("ok")


if __name__ == "__main__":
    main()
