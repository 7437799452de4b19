#!/usr/bin/python3
"""Golden compression fixtures for lonas: Wanda pruning and GPTQ INT4 (PyTorch reference values).

Regenerate (from the repository root):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 test/golden/gen/generate_compress.py

Writes, under test/golden/fixtures/:
  wanda.safetensors  Wanda (Sun et al. 2023, locuslab/wanda lib/prune.py: prune_wanda and
                     lib/layerwrapper.py: WrappedGPT) on the llama_untied model of
                     generate.py: unstructured 50 % and 60 %, 2:4, and a per-row magnitude
                     baseline; the per-input-channel statistics, masks, pruned weights and
                     the logits of the pruned model.
  gptq.safetensors   GPTQ (Frantar et al., gptq.py: GPTQ.fasterquant + quant.py: Quantizer,
                     as AutoGPTQ runs it) on one random 24x256 linear: 4 bits, asymmetric,
                     group size 128, block size 128, damp 1 %; plain order, act-order, and a
                     mask-preserving variant for a 50 % sparse weight; the dequantised
                     weights, integer codes, scales/zeros/g_idx and the AutoGPTQ packed
                     layout (qweight/qzeros/scales), plus round-to-nearest for comparison.

No transformers / safetensors / auto_gptq package: the reference algorithms are written
out below (op for op where it matters), on top of the Llama equations and seeding helpers
of generate.py.  Pinned like generate.py (Debian torch 1.13, float32, one thread,
deterministic algorithms); the fixtures of the other generators are not touched.
The writer here is generate.py's layout extended with the F16 and U8 dtypes.
See README.md beside this file for every tensor name and metadata key.
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
import generate as G  # noqa: E402  (setup_torch, seed_for, llama_*, rmsnorm, rope, attention)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
GENERATOR = "test/golden/gen/generate_compress.py"
MAX_BYTES = OrderedDict(wanda=400_000, gptq=800_000)

# ---------------------------------------------------------------------------
# Wanda settings
# ---------------------------------------------------------------------------

BASE_FIXTURE = "llama_untied"
CALIB_N, CALIB_T = 4, 9
LINEARS = (
    ("self_attn", "q_proj"),
    ("self_attn", "k_proj"),
    ("self_attn", "v_proj"),
    ("self_attn", "o_proj"),
    ("mlp", "gate_proj"),
    ("mlp", "up_proj"),
    ("mlp", "down_proj"),
)
# (prefix, kind, ratio or (n, m))
WANDA_VARIANTS = (
    ("unstructured", "unstructured", 0.5),
    ("nm24", "nm", (2, 4)),
    ("unstructured60", "unstructured", 0.6),
)
MAGNITUDE_RATIO = 0.5

# ---------------------------------------------------------------------------
# GPTQ settings
# ---------------------------------------------------------------------------

GPTQ_OUT, GPTQ_IN = 24, 256
GPTQ_TOKENS, GPTQ_BATCH = 600, 100
GPTQ_W_STD = 0.02
GPTQ_COL_LOGSTD = 0.5  # columns of X multiplied by exp(0.5 * randn)
GPTQ_DEAD = (37,)  # input channels that are exactly 0 in every calibration token
GPTQ_SPARSITY = 0.5  # per row, for the sparse variant
BITS, GROUP, BLOCK, PERCDAMP = 4, 128, 128, 0.01
PACK = 32 // BITS  # 8 nibbles per int32


# ---------------------------------------------------------------------------
# safetensors writer / reader: generate.py's layout, plus F16 and U8
# ---------------------------------------------------------------------------

_NP = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}


def _to_numpy(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.float32:
        return "F32", t.numpy().astype("<f4", copy=False)
    if t.dtype == torch.float16:
        return "F16", t.numpy().astype("<f2", copy=False)
    if t.dtype == torch.uint8:
        return "U8", t.numpy().astype("u1", copy=False)
    if t.dtype == torch.bool:
        return "U8", t.to(torch.uint8).numpy()
    if t.dtype == torch.int32:  # raw bit patterns (packed qweight / qzeros may be negative)
        return "I32", t.numpy().astype("<i4", copy=False)
    if t.dtype == torch.int64:
        a = t.numpy()
        assert a.min(initial=0) >= -(2**31) and a.max(initial=0) < 2**31
        return "I32", a.astype("<i4")
    raise TypeError(f"unsupported dtype {t.dtype}")


def encode_st(tensors, metadata):
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


def decode_st(buf):
    (n,) = struct.unpack_from("<Q", buf, 0)
    assert n % 8 == 0, "header length not padded to 8"
    header = json.loads(buf[8 : 8 + n].decode("utf-8"), object_pairs_hook=OrderedDict)
    data = buf[8 + n :]
    metadata = header.pop("__metadata__", {})
    out = OrderedDict()
    expect = 0
    for name, info in header.items():
        dt = _NP[info["dtype"]]
        begin, end = info["data_offsets"]
        assert begin == expect, f"{name}: tensors not packed in header order"
        count = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        assert end - begin == count * dt.itemsize, f"{name}: size mismatch"
        out[name] = (info["dtype"], np.frombuffer(data[begin:end], dtype=dt).reshape(info["shape"]))
        expect = end
    assert expect == len(data), "trailing bytes after the last tensor"
    return out, metadata


def common_metadata(format_note):
    return OrderedDict(
        torch_version=torch.__version__,
        generator=GENERATOR,
        openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
        format_note=format_note,
    )


# ===========================================================================
# Wanda
# ===========================================================================


def wname(i, sub, mod):
    return f"model.layers.{i}.{sub}.{mod}.weight"


def linear_names(cfg):
    return [wname(i, s, m) for i in range(cfg["num_hidden_layers"]) for s, m in LINEARS]


def base_setup():
    """Exactly the llama_untied parameters of generate.py (same config, seed, draw order)."""
    cfg = G.llama_config(tied=False)
    G.seed_for(BASE_FIXTURE)
    init = G.llama_init(cfg)
    torch.randint(0, cfg["vocab_size"], (2, 9))  # llama_untied's input_ids (not used here)
    G.seed_for("wanda.calib_ids")
    calib_ids = torch.randint(0, cfg["vocab_size"], (CALIB_N, CALIB_T))
    return cfg, init, calib_ids


def decoder_layer(cfg, P, i, h, hook=None):
    """One HF Llama decoder layer (the equations of generate.llama_forward), positions
    0..T-1, causal.  hook(weight_name, x) sees the input of each linear, as an nn.Linear
    forward hook sees inp[0]."""
    B, T, _ = h.shape
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    cos, sin = G.rope_cos_sin(torch.arange(T), D, cfg["rope_theta"])
    cos, sin = cos.to(h.dtype), sin.to(h.dtype)
    p = f"model.layers.{i}."

    def lin(sub, mod, x):
        n = wname(i, sub, mod)
        if hook is not None:
            hook(n, x)
        return x @ P[n].T

    a = G.rmsnorm(h, P[p + "input_layernorm.weight"], eps)
    q = lin("self_attn", "q_proj", a).view(B, T, Hq, D)
    k = lin("self_attn", "k_proj", a).view(B, T, Hkv, D)
    v = lin("self_attn", "v_proj", a).view(B, T, Hkv, D)
    q = G.apply_rope(q, cos, sin)
    k = G.apply_rope(k, cos, sin)
    o = G.attention(q, k, v).reshape(B, T, Hq * D)
    h = h + lin("self_attn", "o_proj", o)
    m = G.rmsnorm(h, P[p + "post_attention_layernorm.weight"], eps)
    gate = lin("mlp", "gate_proj", m)
    up = lin("mlp", "up_proj", m)
    return h + lin("mlp", "down_proj", F.silu(gate) * up)


class WrappedGPT:
    """locuslab/wanda lib/layerwrapper.py WrappedGPT (nn.Linear branch), op for op."""

    def __init__(self, columns, dtype=torch.float32):
        self.scaler_row = torch.zeros((columns), dtype=dtype)
        self.nsamples = 0
        self.dtype = dtype

    def add_batch(self, inp):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = inp.type(self.dtype)  # torch.float32 in the reference
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples


def unstructured_mask(W_metric, ratio):
    """prune_wanda, `else` branch without use_variant: per output row, stable sort."""
    W_mask = torch.zeros_like(W_metric) == 1
    sort_res = torch.sort(W_metric, dim=-1, stable=True)
    k = int(W_metric.shape[1] * ratio)
    indices = sort_res[1][:, :k]
    W_mask.scatter_(1, indices, True)
    s = sort_res[0]
    # relative gap between the largest pruned and the smallest kept score, per row
    gap = ((s[:, k] - s[:, k - 1]) / s[:, k]).min().item()
    return W_mask, gap


def nm_mask(W_metric, prune_n, prune_m):
    """prune_wanda, `prune_n != 0` branch: in each group of m inputs prune the n lowest."""
    W_mask = torch.zeros_like(W_metric) == 1
    gap = float("inf")
    for ii in range(W_metric.shape[1]):
        if ii % prune_m == 0:
            tmp = W_metric[:, ii : (ii + prune_m)].float() if W_metric.dtype == torch.float32 \
                else W_metric[:, ii : (ii + prune_m)]
            W_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
            s = torch.sort(tmp, dim=1)[0]
            gap = min(gap, ((s[:, prune_n] - s[:, prune_n - 1]) / s[:, prune_n]).min().item())
    return W_mask, gap


def prune_wanda(cfg, init, calib_ids, kind, arg, dtype=torch.float32, collect_inputs=False):
    """prune_wanda of locuslab/wanda on the 2-layer model; returns pruned params, masks,
    scaler rows, final hidden states (per sequence) and the smallest score gaps."""
    P = OrderedDict((n, t.detach().clone().to(dtype)) for n, t in init.items())
    # Catcher: the inputs of layer 0 are the embeddings, one (1, T, C) tensor per sample.
    inps = [F.embedding(calib_ids[j : j + 1], P["model.embed_tokens.weight"])
            for j in range(calib_ids.shape[0])]
    masks, scaler_rows, gaps, raw = OrderedDict(), OrderedDict(), OrderedDict(), OrderedDict()
    for i in range(cfg["num_hidden_layers"]):
        names = [wname(i, s, m) for s, m in LINEARS]
        wrapped = OrderedDict((n, WrappedGPT(P[n].shape[1], dtype)) for n in names)

        def hook(n, x):
            wrapped[n].add_batch(x.data)
            if collect_inputs:
                raw.setdefault(n, []).append(x.detach().clone())

        outs = [None] * len(inps)
        with torch.no_grad():
            for j in range(len(inps)):  # one sequence per call, hooks on the unpruned layer
                outs[j] = decoder_layer(cfg, P, i, inps[j], hook)
        for n in names:
            W_metric = torch.abs(P[n]) * torch.sqrt(wrapped[n].scaler_row.reshape((1, -1)))
            if kind == "nm":
                W_mask, gap = nm_mask(W_metric, arg[0], arg[1])
            else:
                W_mask, gap = unstructured_mask(W_metric, arg)
            P[n][W_mask] = 0  # all 7 masks of the layer come from the unpruned layer's inputs
            masks[n] = W_mask
            scaler_rows[n] = wrapped[n].scaler_row.clone()
            gaps[n] = gap
        with torch.no_grad():
            for j in range(len(inps)):  # outputs of the pruned layer feed the next layer
                outs[j] = decoder_layer(cfg, P, i, inps[j])
        inps = outs
    return P, masks, scaler_rows, torch.cat(inps, dim=0), gaps, raw


def magnitude_masks(cfg, init, ratio):
    out = OrderedDict()
    gaps = OrderedDict()
    for n in linear_names(cfg):
        out[n], gaps[n] = unstructured_mask(torch.abs(init[n]), ratio)
    return out, gaps


def build_wanda():
    cfg, init, calib_ids = base_setup()
    Tn = OrderedDict()
    M = common_metadata("little-endian; F32 floats, U8 masks (1 = pruned), I32 ids")
    for n, t in init.items():
        Tn["param." + n] = t
    Tn["calib_ids"] = calib_ids.to(torch.int32)

    results = OrderedDict()
    for prefix, kind, arg in WANDA_VARIANTS:
        results[prefix] = prune_wanda(cfg, init, calib_ids, kind, arg)
    mag, mag_gaps = magnitude_masks(cfg, init, MAGNITUDE_RATIO)

    P_a, masks_a, rows_a, _, _, _ = results["unstructured"]
    names = linear_names(cfg)
    for n in names:
        Tn["scaler_row." + n] = rows_a[n]
    for n in names:
        Tn["unstructured.mask." + n] = masks_a[n].to(torch.uint8)
    for n in names:
        Tn["unstructured.weight." + n] = P_a[n]
    with torch.no_grad():
        Tn["logits_pruned"] = G.llama_forward(cfg, P_a, calib_ids)
    for n in names:
        Tn["nm24.mask." + n] = results["nm24"][1][n].to(torch.uint8)
    for n in names:
        Tn["unstructured60.mask." + n] = results["unstructured60"][1][n].to(torch.uint8)
    for n in names:
        Tn["magnitude.mask." + n] = mag[n].to(torch.uint8)

    M["config"] = json.dumps(cfg, separators=(",", ":"))
    M["base_fixture"] = BASE_FIXTURE
    M["calib.nsamples"] = str(CALIB_N)
    M["calib.seqlen"] = str(CALIB_T)
    M["calib.seed"] = 'seed_for("wanda.calib_ids"), then randint(0, 96, (4, 9))'
    M["unstructured.sparsity_ratio"] = repr(0.5)
    M["nm24.prune_n"] = "2"
    M["nm24.prune_m"] = "4"
    M["unstructured60.sparsity_ratio"] = repr(0.6)
    M["magnitude.sparsity_ratio"] = repr(MAGNITUDE_RATIO)
    M["pruned_per_row"] = json.dumps(
        {"in32": {"0.5": int(32 * 0.5), "0.6": int(32 * 0.6)},
         "in80": {"0.5": int(80 * 0.5), "0.6": int(80 * 0.6)}}, separators=(",", ":"))
    M["linears"] = json.dumps([m for _, m in LINEARS], separators=(",", ":"))
    for prefix, _, _ in WANDA_VARIANTS:
        M[f"{prefix}.min_rel_score_gap"] = f"{min(results[prefix][4].values()):.3e}"
    M["magnitude.min_rel_score_gap"] = f"{min(mag_gaps.values()):.3e}"
    extra = dict(cfg=cfg, init=init, calib_ids=calib_ids, results=results, mag=mag)
    return Tn, M, extra


# ===========================================================================
# GPTQ
# ===========================================================================


def quantize(x, scale, zero, maxq):
    """AutoGPTQ quantizer.py / gptq quant.py `quantize` (maxq >= 0 branch)."""
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def quantize_codes(x, scale, zero, maxq):
    """The integer codes of `quantize` (same ops; the reference only returns scale*(q-zero))."""
    return torch.clamp(torch.round(x / scale) + zero, 0, maxq)


class Quantizer:
    """Quantizer.find_params with perchannel=True, weight=True, sym=False, mse=False."""

    def __init__(self, bits, dtype=torch.float32):
        self.maxq = torch.tensor(2**bits - 1)
        self.scale = torch.zeros(1, dtype=dtype)
        self.zero = torch.zeros(1, dtype=dtype)

    def ready(self):
        return torch.all(self.scale != 0)

    def find_params(self, x):
        shape = x.shape
        x = x.flatten(1)
        tmp = torch.zeros(x.shape[0], dtype=x.dtype)
        xmin = torch.minimum(x.min(1)[0], tmp)
        xmax = torch.maximum(x.max(1)[0], tmp)
        tmp = (xmin == 0) & (xmax == 0)
        xmin[tmp] = -1
        xmax[tmp] = +1
        self.scale = (xmax - xmin) / self.maxq
        self.zero = torch.round(-xmin / self.scale)
        shape = [-1] + [1] * (len(shape) - 1)
        self.scale = self.scale.reshape(shape)
        self.zero = self.zero.reshape(shape)


class HessianStats:
    """GPTQ.add_batch (nn.Linear branch), op for op."""

    def __init__(self, columns, dtype=torch.float32):
        self.H = torch.zeros((columns, columns), dtype=dtype)
        self.nsamples = 0
        self.dtype = dtype

    def add_batch(self, inp):
        if len(inp.shape) == 2:
            inp = inp.unsqueeze(0)
        tmp = inp.shape[0]
        if len(inp.shape) == 3:
            inp = inp.reshape((-1, inp.shape[-1]))
        inp = inp.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.to(self.dtype)
        self.H += inp.matmul(inp.t())


def hessian(X, dtype=torch.float32):
    st = HessianStats(X.shape[1], dtype)
    for b in range(0, X.shape[0], GPTQ_BATCH):
        # a batch of 100 samples of 1 token each: tmp = 100, so H = 2/600 X^T X at the end
        st.add_batch(X[b : b + GPTQ_BATCH].reshape(-1, 1, X.shape[1]))
    assert st.nsamples == X.shape[0]
    return st.H


def fasterquant(W_in, H_in, actorder=False, mask=None, dtype=torch.float32):
    """AutoGPTQ GPTQ.fasterquant(blocksize=128, percdamp=.01, group_size=128, actorder,
    static_groups=False), float32.  mask (1 = keep): lonas's SQFT-compatible variant, which
    multiplies the not-yet-quantised columns by the mask after every error propagation.
    Returns dequantised Q, integer codes, scale/zero (out, n_groups), g_idx, damp, perm,
    the GPTQ loss sum."""
    W = W_in.clone().to(dtype)
    columns = W.shape[1]
    quantizer = Quantizer(BITS, dtype)
    if not quantizer.ready():
        quantizer.find_params(W)

    H = H_in.clone().to(dtype)
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Mk = None if mask is None else mask.to(dtype)
    if Mk is not None:
        W *= Mk

    g_idx = []
    scale = []
    zero = []
    now_idx = 1
    perm = None
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W = W[:, perm]
        H = H[perm][:, perm]
        invperm = torch.argsort(perm)
        if Mk is not None:
            Mk = Mk[:, perm]

    Losses = torch.zeros_like(W)
    Q = torch.zeros_like(W)
    Qc = torch.zeros_like(W)  # integer codes (not in the reference, same ops as quantize)
    margin = float("inf")  # smallest distance of w / scale from a rounding boundary (x.5)

    damp = PERCDAMP * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H

    for i1 in range(0, columns, BLOCK):
        i2 = min(i1 + BLOCK, columns)
        count = i2 - i1

        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Qc1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Losses1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        M1 = None if Mk is None else Mk[:, i1:i2]

        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]

            if (i1 + i) % GROUP == 0:
                # the full W: lazily updated by the earlier blocks, not by this block yet
                quantizer.find_params(W[:, (i1 + i) : (i1 + i + GROUP)])
            if ((i1 + i) // GROUP) - now_idx == -1:
                scale.append(quantizer.scale)
                zero.append(quantizer.zero)
                now_idx += 1

            q = quantize(w.unsqueeze(1), quantizer.scale, quantizer.zero, quantizer.maxq).flatten()
            Qc1[:, i] = quantize_codes(
                w.unsqueeze(1), quantizer.scale, quantizer.zero, quantizer.maxq).flatten()
            Q1[:, i] = q
            t = w.unsqueeze(1) / quantizer.scale
            margin = min(margin, ((t - torch.floor(t)) - 0.5).abs().min().item())
            Losses1[:, i] = (w - q) ** 2 / d**2

            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            if M1 is not None:
                W1[:, i + 1 :] *= M1[:, i + 1 :]
            Err1[:, i] = err1

        Q[:, i1:i2] = Q1
        Qc[:, i1:i2] = Qc1
        Losses[:, i1:i2] = Losses1 / 2

        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        if Mk is not None:
            W[:, i2:] *= Mk[:, i2:]

    g_idx = [i // GROUP for i in range(columns)]
    g_idx = torch.tensor(g_idx, dtype=torch.int32)
    if actorder:
        Q = Q[:, invperm]
        Qc = Qc[:, invperm]
        g_idx = g_idx[invperm]

    scale = torch.cat(scale, dim=1)
    zero = torch.cat(zero, dim=1)
    return dict(Q=Q, q=Qc, scale=scale, zero=zero, g_idx=g_idx, damp=damp.item(),
                perm=perm, loss=torch.sum(Losses).item(), margin=margin)


def rtn(W_in, dtype=torch.float32):
    """Round-to-nearest with the same group-wise asymmetric quantiser (no H, no dead-column
    handling): per group of 128 input columns, find_params on the original W, quantize."""
    W = W_in.to(dtype)
    quantizer = Quantizer(BITS, dtype)
    Q = torch.zeros_like(W)
    for g0 in range(0, W.shape[1], GROUP):
        quantizer.find_params(W[:, g0 : g0 + GROUP])
        Q[:, g0 : g0 + GROUP] = quantize(W[:, g0 : g0 + GROUP], quantizer.scale, quantizer.zero,
                                         quantizer.maxq)
    return Q


def pack_autogptq(q, scale, zero, g_idx, W_deq):
    """QuantLinear.pack of AutoGPTQ (qlinear_cuda*, bits 4), float32 scales.
    q: (out, in) codes; scale/zero: (out, n_groups) as fasterquant returns them."""
    scales = scale.t().contiguous()  # (n_groups, out)
    zeros = zero.t().contiguous()
    scale_zeros = zeros * scales
    infeatures = q.shape[1]
    intweight = []
    for idx in range(infeatures):
        intweight.append(
            torch.round((W_deq[:, idx] + scale_zeros[g_idx[idx]]) / scales[g_idx[idx]])
            .to(torch.int)[:, None])
    intweight = torch.cat(intweight, dim=1)
    assert torch.equal(intweight, q.to(torch.int)), "AutoGPTQ's pack recovers other codes"
    intweight = intweight.t().contiguous().numpy().astype(np.uint32)  # (in, out)
    qweight = np.zeros((intweight.shape[0] // 32 * BITS, intweight.shape[1]), dtype=np.uint32)
    i = 0
    row = 0
    while row < qweight.shape[0]:
        for j in range(i, i + PACK):
            qweight[row] |= intweight[j] << (BITS * (j - i))
        i += PACK
        row += 1
    qweight = qweight.astype(np.int32)

    zeros_m1 = (zeros - 1).numpy().astype(np.uint32)  # v1 "gptq" format: zero - 1
    # AutoGPTQ sizes this `outfeatures // 32 * bits`, which assumes out % 32 == 0 (0 columns
    # for out = 24); out * bits / 32 = out / 8 is the same layout without that assumption.
    assert zeros_m1.shape[1] % PACK == 0
    qzeros = np.zeros((zeros_m1.shape[0], zeros_m1.shape[1] // PACK), dtype=np.uint32)
    i = 0
    col = 0
    while col < qzeros.shape[1]:
        for j in range(i, i + PACK):
            qzeros[:, col] |= zeros_m1[:, j] << (BITS * (j - i))
        i += PACK
        col += 1
    qzeros = qzeros.astype(np.int32)
    return torch.from_numpy(qweight), torch.from_numpy(qzeros), scales


def output_error(X, W, Q):
    """||X W^T - X Q^T||_F^2, in float64 from the float32 tensors."""
    X, W, Q = X.double(), W.double(), Q.double()
    return ((X @ W.T - X @ Q.T) ** 2).sum().item()


def gptq_inputs():
    G.seed_for("gptq")
    W = GPTQ_W_STD * torch.randn(GPTQ_OUT, GPTQ_IN)
    colscale = torch.exp(GPTQ_COL_LOGSTD * torch.randn(GPTQ_IN))
    X = torch.randn(GPTQ_TOKENS, GPTQ_IN) * colscale
    X = X.half().float()  # exactly representable in F16: the file stores X as F16, losslessly
    for c in GPTQ_DEAD:
        X[:, c] = 0
    G.seed_for("gptq.sparse_mask")
    k = int(GPTQ_IN * GPTQ_SPARSITY)
    order = torch.rand(GPTQ_OUT, GPTQ_IN).argsort(dim=1)
    keep = torch.ones(GPTQ_OUT, GPTQ_IN, dtype=torch.bool)
    keep.scatter_(1, order[:, :k], False)
    W_sparse = torch.where(keep, W, torch.zeros_like(W))  # +0.0 where pruned
    return W, X, W_sparse, keep


def build_gptq():
    W, X, W_sparse, keep = gptq_inputs()
    H = hessian(X)
    variants = OrderedDict(
        plain=fasterquant(W, H),
        actorder=fasterquant(W, H, actorder=True),
        sparse=fasterquant(W_sparse, H, mask=keep),
    )
    Q_rtn = rtn(W)
    Q_rtn_sparse = rtn(W_sparse)

    Tn = OrderedDict()
    M = common_metadata("little-endian; F32 floats, F16 for X (exact) and scales_f16, "
                        "U8 codes, I32 g_idx/perm and packed qweight/qzeros (raw bits)")
    Tn["W"] = W
    Tn["X"] = X.half()
    Tn["H"] = H
    Tn["sparse.W"] = W_sparse
    packed = OrderedDict()
    for v, r in variants.items():
        qweight, qzeros, scales = pack_autogptq(r["q"], r["scale"], r["zero"], r["g_idx"], r["Q"])
        packed[v] = (qweight, qzeros, scales)
        Tn[f"{v}.Q"] = r["Q"]
        Tn[f"{v}.scales"] = scales
        Tn[f"{v}.zeros"] = r["zero"].t().contiguous()
        Tn[f"{v}.g_idx"] = r["g_idx"]
        Tn[f"{v}.q"] = r["q"].to(torch.uint8)
        Tn[f"{v}.qweight"] = qweight
        Tn[f"{v}.qzeros"] = qzeros
        Tn[f"{v}.scales_f16"] = scales.half()
        if r["perm"] is not None:
            Tn[f"{v}.perm"] = r["perm"].to(torch.int32)
    Tn["rtn.Q"] = Q_rtn

    M["out_features"] = str(GPTQ_OUT)
    M["in_features"] = str(GPTQ_IN)
    M["bits"] = str(BITS)
    M["group_size"] = str(GROUP)
    M["blocksize"] = str(BLOCK)
    M["percdamp"] = repr(PERCDAMP)
    M["sym"] = "false"
    M["mse"] = "false"
    M["static_groups"] = "false"
    M["checkpoint_format"] = "gptq"
    M["qzeros_note"] = "AutoGPTQ v1 'gptq' format: qzeros hold zero - 1 (add 1 when unpacking)"
    M["nsamples"] = str(GPTQ_TOKENS)
    M["add_batch_size"] = str(GPTQ_BATCH)
    M["H_note"] = ("H as add_batch leaves it = 2/600 X^T X, undamped, before the dead-column "
                   "fix; each add_batch call gets 100 samples of 1 token (tmp = 100)")
    M["dead_columns"] = json.dumps(list(GPTQ_DEAD))
    M["sparse.sparsity"] = repr(GPTQ_SPARSITY)
    M["sparse.note"] = ("lonas SQFT-compatible GPTQ: after each column's error propagation "
                        "W1[:, i+1:] *= M1[:, i+1:], after each block W[:, i2:] *= M[:, i2:]; "
                        "M = (sparse.W != 0)")
    for v, r in variants.items():
        M[f"{v}.damp"] = repr(r["damp"])
        M[f"{v}.gptq_loss"] = repr(r["loss"])
        M[f"{v}.min_rounding_margin"] = f"{r['margin']:.3e}"
    M["plain.output_error"] = repr(output_error(X, W, variants["plain"]["Q"]))
    M["actorder.output_error"] = repr(output_error(X, W, variants["actorder"]["Q"]))
    M["sparse.output_error"] = repr(output_error(X, W_sparse, variants["sparse"]["Q"]))
    M["rtn.output_error"] = repr(output_error(X, W, Q_rtn))
    M["sparse.rtn_output_error"] = repr(output_error(X, W_sparse, Q_rtn_sparse))
    M["output_error_note"] = "||X W^T - X Q^T||_F^2 over the 600 tokens, float64 from the F32 tensors"
    extra = dict(W=W, X=X, H=H, W_sparse=W_sparse, keep=keep, variants=variants,
                 packed=packed, Q_rtn=Q_rtn, Q_rtn_sparse=Q_rtn_sparse)
    return Tn, M, extra


# ===========================================================================
# Checks
# ===========================================================================


def maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


def self_check(name, Tn, M, buf):
    path = os.path.join(FIXTURES, name + ".safetensors")
    with open(path, "rb") as f:
        disk = f.read()
    assert disk == buf, f"{path}: file on disk differs from what was encoded"
    assert len(buf) < MAX_BYTES[name], f"{path}: {len(buf)} bytes is too large"
    got, gmeta = decode_st(buf)
    assert list(got.keys()) == list(Tn.keys()), f"{name}: tensor names/order differ"
    assert dict(gmeta) == dict(M), f"{name}: metadata differs"
    for k, t in Tn.items():
        dt, a = got[k]
        exp = t.detach().numpy()
        assert tuple(a.shape) == tuple(t.shape), f"{name}:{k}: shape"
        if t.dtype == torch.bool:
            exp = exp.astype(np.uint8)
        assert np.array_equal(a, exp.astype(a.dtype)), f"{name}:{k}: values do not round-trip"
    print(f"  {name}.safetensors: {len(buf)} bytes, {len(got)} tensors, round-trip ok")
    return len(buf)


def check_wanda(Tn, extra):
    cfg, init, calib_ids = extra["cfg"], extra["init"], extra["calib_ids"]
    results, mag = extra["results"], extra["mag"]
    names = linear_names(cfg)

    # 1. The base parameters are exactly llama_untied's (the generate.py fixture on disk).
    with open(os.path.join(FIXTURES, BASE_FIXTURE + ".safetensors"), "rb") as f:
        base, _ = G.decode_safetensors(f.read())
    for n, t in init.items():
        assert np.array_equal(base["param." + n], t.numpy()), f"param.{n} != {BASE_FIXTURE}"
    print(f"  base params bit-identical to {BASE_FIXTURE}.safetensors")

    # 2. Mask shapes and counts; pruned weight = param where kept, 0 where pruned.
    for prefix, kind, arg in WANDA_VARIANTS:
        P, masks = results[prefix][0], results[prefix][1]
        for n in names:
            m = masks[n]
            cols = m.shape[1]
            if kind == "nm":
                per = m.view(m.shape[0], cols // arg[1], arg[1]).sum(-1)
                assert (per == arg[0]).all(), f"{prefix}:{n}: not {arg[0]}:{arg[1]}"
            else:
                assert (m.sum(1) == int(cols * arg)).all(), f"{prefix}:{n}: per-row count"
            assert torch.equal(P[n], torch.where(m, torch.zeros_like(init[n]), init[n])), n
            assert (init[n][m] != 0).all()
    for n in names:
        assert (mag[n].sum(1) == int(mag[n].shape[1] * MAGNITUDE_RATIO)).all()
        kept_min = torch.where(mag[n], torch.full_like(init[n], float("inf")), init[n].abs()).min(1)[0]
        pruned_max = torch.where(mag[n], init[n].abs(), torch.zeros_like(init[n])).max(1)[0]
        assert (pruned_max < kept_min).all(), f"magnitude:{n}"
    print("  masks: per-row / per-group counts exact; pruned weights = param outside the mask")

    # 3. Wanda masks differ from the magnitude masks (the activations matter).
    diff = sum((results["unstructured"][1][n] != mag[n]).sum().item() for n in names)
    total = sum(mag[n].numel() for n in names)
    assert diff > 0
    print(f"  unstructured 50% vs magnitude 50%: {diff} of {total} mask entries differ")

    # 4. logits_pruned: the layer-by-layer hidden states (one sequence per call) through the
    #    final norm and lm_head agree with the batched llama_forward on the pruned params.
    P_a, _, _, hidden, _, _ = results["unstructured"]
    with torch.no_grad():
        lg = G.rmsnorm(hidden, P_a["model.norm.weight"], cfg["rms_norm_eps"]) @ P_a["lm_head.weight"].T
        logits = G.llama_forward(cfg, P_a, calib_ids)
        logits_dense = G.llama_forward(cfg, init, calib_ids)
    e = maxdiff(lg, logits)
    assert e < 1e-5, f"layer-by-layer vs batched forward: {e}"
    print(f"  logits_pruned: layer-by-layer vs batched forward max |diff| {e:.1e}; "
          f"moves {maxdiff(logits, logits_dense):.3f} from the dense logits")

    # 5. float64 re-run of the whole pipeline: same masks; scaler_row vs an independent
    #    sum of squares of the captured layer inputs; f32 vs f64 errors.
    for prefix, kind, arg in WANDA_VARIANTS:
        P64, masks64, rows64, _, gaps, raw = prune_wanda(
            cfg, init, calib_ids, kind, arg, dtype=torch.float64, collect_inputs=True)
        nflip = sum((masks64[n] != results[prefix][1][n]).sum().item() for n in names)
        assert nflip == 0, f"{prefix}: {nflip} mask entries differ between float32 and float64"
        erow = 0.0
        for n in names:
            ref = sum((x.reshape(-1, x.shape[-1]) ** 2).sum(0) for x in raw[n]) / len(raw[n])
            erow = max(erow, (maxdiff(rows64[n], ref) / ref.abs().max().item()))
            assert erow < 1e-12, f"{prefix}:{n}: scaler_row != mean over samples of sum x^2"
        rel32 = max(maxdiff(results[prefix][2][n], rows64[n]) / rows64[n].abs().max().item()
                    for n in names)
        line = (f"  {prefix}: float64 run gives the same masks; scaler_row f32 vs f64 rel "
                f"{rel32:.1e} (f64 vs direct sum of squares {erow:.0e}); smallest relative "
                f"score gap at the cut {min(gaps.values()):.2e}")
        if prefix == "unstructured":
            with torch.no_grad():
                l64 = G.llama_forward(cfg, P64, calib_ids)
            line += f"; logits_pruned f32 vs f64 {maxdiff(l64, logits):.1e}"
        print(line)


def dequant(q, scales, zeros, g_idx):
    """scales[g_idx[c]] * (q[:, c] - zeros[g_idx[c]]), as quantize() computes it."""
    g = g_idx.long()
    return scales[g].t() * (q - zeros[g].t())


def unpack(qweight, qzeros):
    qw = qweight.numpy().view(np.uint32)
    rows = [(qw >> (BITS * k)) & 0xF for k in range(PACK)]  # each (in/8, out)
    q = np.stack(rows, axis=1).reshape(qw.shape[0] * PACK, qw.shape[1]).T  # (out, in)
    qz = qzeros.numpy().view(np.uint32)
    cols = [(qz >> (BITS * k)) & 0xF for k in range(PACK)]  # each (n_groups, out/8)
    z = np.stack(cols, axis=2).reshape(qz.shape[0], qz.shape[1] * PACK) + 1
    return torch.from_numpy(q.astype(np.float32)), torch.from_numpy(z.astype(np.float32))


def gptq_unblocked64(W_in, H_in, actorder=False, mask=None):
    """Independent float64 GPTQ without blocks or lazy batches: after each column the error
    goes to all later columns at once (the OBQ/GPTQ update W[:, j:] -= err * U[j, j:])."""
    W = W_in.double().clone()
    H = H_in.double().clone()
    n = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    Mk = None if mask is None else mask.double()
    perm = torch.arange(n)
    if actorder:
        perm = torch.argsort(torch.diag(H), descending=True)
        W, H = W[:, perm], H[perm][:, perm]
        Mk = None if Mk is None else Mk[:, perm]
    H = H + PERCDAMP * torch.diag(H).mean() * torch.eye(n, dtype=torch.float64)
    U = torch.linalg.cholesky(torch.linalg.inv(H), upper=True)
    Q = torch.zeros_like(W)
    codes = torch.zeros_like(W)
    for j in range(n):
        if j % GROUP == 0:
            x = W[:, j : j + GROUP]
            xmin = torch.clamp(x.min(1)[0], max=0)
            xmax = torch.clamp(x.max(1)[0], min=0)
            s = (xmax - xmin) / (2**BITS - 1)
            z = torch.round(-xmin / s)
        codes[:, j] = torch.clamp(torch.round(W[:, j] / s) + z, 0, 2**BITS - 1)
        Q[:, j] = s * (codes[:, j] - z)
        err = (W[:, j] - Q[:, j]) / U[j, j]
        W[:, j:] -= err[:, None] * U[j, j:][None, :]
        if Mk is not None:
            W[:, j + 1 :] *= Mk[:, j + 1 :]
    inv = torch.argsort(perm)
    return Q[:, inv], codes[:, inv]


def check_gptq(Tn, M, extra):
    W, X, H, W_sparse, keep = extra["W"], extra["X"], extra["H"], extra["W_sparse"], extra["keep"]
    variants, packed = extra["variants"], extra["packed"]
    n_groups = GPTQ_IN // GROUP

    # 1. H: the add_batch accumulation equals 2/600 X^T X (float64), and a float64 run of the
    #    same accumulation.
    ref = 2.0 / GPTQ_TOKENS * (X.double().T @ X.double())
    eh = maxdiff(H, ref) / ref.abs().max().item()
    eh2 = maxdiff(hessian(X, torch.float64), ref) / ref.abs().max().item()
    assert eh < 1e-6 and eh2 < 1e-12, (eh, eh2)
    d = torch.diag(H)
    assert all(d[c].item() == 0 for c in GPTQ_DEAD) and (d > 0).sum() == GPTQ_IN - len(GPTQ_DEAD)
    d_fixed = d.clone()
    d_fixed[d == 0] = 1
    assert len(set(d_fixed.tolist())) == GPTQ_IN, "diag(H) has ties: act-order would be ambiguous"
    print(f"  H vs 2/600 X^T X (float64): rel {eh:.1e}; diag(H) in [{d[d > 0].min():.3f}, "
          f"{d.max():.3f}], dead columns {list(GPTQ_DEAD)}, no ties")

    for v, r in variants.items():
        Q, q, scales, zeros, g_idx = r["Q"], r["q"], r["scale"].t(), r["zero"].t(), r["g_idx"]
        qweight, qzeros, _ = packed[v]
        # 2. codes, zeros, scales, g_idx
        assert q.min() >= 0 and q.max() <= 15 and torch.equal(q, q.round())
        assert torch.equal(zeros, zeros.round()) and zeros.min() >= 1 and zeros.max() <= 15, \
            f"{v}: a zero of 0 would underflow in the v1 qzeros (zero - 1)"
        assert (scales > 0).all() and tuple(scales.shape) == (n_groups, GPTQ_OUT)
        counts = torch.bincount(g_idx.long(), minlength=n_groups)
        assert (counts == GROUP).all()
        # 3. Q is exactly the dequantisation of (q, scales, zeros, g_idx)
        assert torch.equal(dequant(q, scales, zeros, g_idx), Q), f"{v}: Q != s * (q - z)"
        # 4. the packed layout unpacks to the same codes and zeros
        uq, uz = unpack(qweight, qzeros)
        assert torch.equal(uq, q) and torch.equal(uz, zeros), f"{v}: pack/unpack"
        # 5. dead columns quantise to 0
        for c in GPTQ_DEAD:
            assert (Q[:, c] == 0).all()
    gi = variants["actorder"]["g_idx"]
    perm = variants["actorder"]["perm"]
    invperm = torch.argsort(perm)
    assert torch.equal(gi.long(), invperm // GROUP)
    assert torch.equal(perm, torch.argsort(d_fixed, descending=True))
    assert not torch.equal(gi, variants["plain"]["g_idx"])
    print("  every variant: codes in [0,15], zeros integer in [1,15], Q == scales[g] * (q - zeros[g]) "
          "bit for bit, qweight/qzeros unpack to q/zeros, dead column -> 0")
    print(f"  actorder: g_idx[c] == invperm[c] // 128 (group 0 = the 128 largest diag(H)); "
          f"{(gi != variants['plain']['g_idx']).sum().item()} of 256 columns change group")

    # 6. sparse: every zero of sparse.W dequantises to exactly 0
    Qs = variants["sparse"]["Q"]
    zeros_in = W_sparse == 0
    assert (Qs[zeros_in] == 0).all(), "sparse: a zero weight did not stay zero"
    assert torch.equal(keep, W_sparse != 0)
    plain_on_sparse = fasterquant(W_sparse, H)
    broken = (plain_on_sparse["Q"][zeros_in] != 0).sum().item()
    print(f"  sparse: all {zeros_in.sum().item()} zeros of sparse.W dequantise to exactly 0 "
          f"({(Qs == 0).sum().item()} zeros in sparse.Q); plain GPTQ on sparse.W would make "
          f"{broken} of them non-zero")

    # 7. GPTQ beats RTN
    e = {k: float(M[k]) for k in ("plain.output_error", "actorder.output_error", "rtn.output_error",
                                  "sparse.output_error", "sparse.rtn_output_error")}
    assert e["plain.output_error"] < e["rtn.output_error"]
    assert e["actorder.output_error"] < e["rtn.output_error"]
    assert e["sparse.output_error"] < e["sparse.rtn_output_error"]
    print("  output error ||XW^T - XQ^T||^2: " + ", ".join(f"{k.replace('.output_error', '')} {x:.4g}"
                                                          for k, x in e.items()))

    # 8. Independent float64 GPTQ (no blocks, no lazy batch, plain inverse): how many codes
    #    move when the arithmetic changes (tolerance guidance for a float32 port).
    for v, kw, Win in (("plain", {}, W), ("actorder", {"actorder": True}, W),
                       ("sparse", {"mask": keep}, W_sparse)):
        Q64, c64 = gptq_unblocked64(Win, H, **kw)
        r = variants[v]
        nd = (c64 != r["q"]).sum().item()
        dq = maxdiff(Q64, r["Q"])
        r64 = fasterquant(Win, H.double(), dtype=torch.float64, **kw)
        nd2 = (r64["q"] != r["q"]).sum().item()
        assert nd2 <= 0.02 * r["q"].numel() and nd <= 0.02 * r["q"].numel(), (v, nd, nd2)
        if v == "sparse":
            assert (Q64[W_sparse == 0] == 0).all()
        print(f"  {v}: float64 unblocked reference: {nd} of {r['q'].numel()} codes differ "
              f"(max |dQ| {dq:.2e}); float64 run of the same code: {nd2} differ")

    # 9. RTN codes: no H involved, float64 gives the same Q up to rounding.
    e_rtn = maxdiff(rtn(W, torch.float64), extra["Q_rtn"])
    print(f"  rtn: float64 vs float32 max |dQ| {e_rtn:.1e}")


# ===========================================================================
# Main
# ===========================================================================


def build_all():
    out = OrderedDict()
    Tw, Mw, xw = build_wanda()
    out["wanda"] = (Tw, Mw, xw)
    Tg, Mg, xg = build_gptq()
    out["gptq"] = (Tg, Mg, xg)
    return out


def main():
    G.setup_torch()
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    fixtures = build_all()
    blobs = OrderedDict((n, encode_st(t, m)) for n, (t, m, _) in fixtures.items())
    again = build_all()
    for n, (t, m, _) in again.items():
        assert encode_st(t, m) == blobs[n], f"{n}: generation is not deterministic"

    os.makedirs(FIXTURES, exist_ok=True)
    for n, buf in blobs.items():
        path = os.path.join(FIXTURES, n + ".safetensors")
        with open(path, "wb") as f:
            f.write(buf)
        print(f"wrote {os.path.relpath(path)}")

    print("self-check:")
    total = 0
    for n, (t, m, _) in fixtures.items():
        total += self_check(n, t, m, blobs[n])
    print(f"  total: {total} bytes")
    print("cross-checks (wanda):")
    check_wanda(fixtures["wanda"][0], fixtures["wanda"][2])
    print("cross-checks (gptq):")
    check_gptq(fixtures["gptq"][0], fixtures["gptq"][1], fixtures["gptq"][2])
    print("ok")


if __name__ == "__main__":
    main()
