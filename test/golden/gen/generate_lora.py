#!/usr/bin/python3
"""Golden LoRA / elastic-LoRA training fixture for lonas (PyTorch reference values).

Regenerate (from the repository root):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 test/golden/gen/generate_lora.py

Writes test/golden/fixtures/lora_train.safetensors:
  the base model of llama_untied.safetensors (same config, seed and weights), frozen;
  LoRA adapters on q/k/v/o/gate/up/down of every layer, r=4, alpha=8, initialised as
  PEFT does (A kaiming_uniform_(a=sqrt(5)), B zeros), plus a variant with B drawn from
  normal(0, 0.02) so that every gradient is non-zero from step 1;
  10 AdamW steps on the LoRA parameters only (the non-zero-B variant), the step-0
  gradients, the final LoRA weights;
  an elastic sub-configuration (q/k/v rank 2 of 4, layer-0 MLP width 60 of 80) with its
  logits, loss and LoRA gradients.

No peft / transformers / safetensors package: the PEFT LoRA Linear forward
(y = base(x) + lora_B(lora_A(dropout(x))) * scaling) is written out below, on top of the
HF Llama equations and the safetensors writer/reader of generate.py.  Pinned like
generate.py (Debian torch 1.13, float32, one thread, deterministic algorithms); the
fixtures of generate.py are not touched.  See README.md beside this file.
"""

import os

# Must be set before torch (and its BLAS) is loaded; the documented command sets it too.
os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import json
import math
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ beside the generators
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402  (setup_torch, seed_for, llama_*, writer/reader)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures"))
FIXTURE = "lora_train"
GENERATOR = "test/golden/gen/generate_lora.py"
MAX_BYTES = 600_000

BASE_FIXTURE = "llama_untied"  # same config, seed, weights and batch as this fixture
ATTN_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
TARGETS = ATTN_TARGETS + MLP_TARGETS

LORA = OrderedDict(r=4, alpha=8, dropout=0.0)
SCALING = LORA["alpha"] / LORA["r"]  # PEFT: lora_alpha / r (not rslora) = 2.0
B_NONZERO_STD = 0.02

STEPS = 10
ADAMW = OrderedDict(lr=5e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0)

# Elastic sub-configuration: active rank per target (others keep r) and MLP width per layer.
ELASTIC_RANK = OrderedDict(q_proj=2, k_proj=2, v_proj=2)
ELASTIC_MLP_WIDTH = (60, 80)


# ---------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------


def _sub(mod):
    return "self_attn" if mod in ATTN_TARGETS else "mlp"


def base_name(i, mod):
    return f"model.layers.{i}.{_sub(mod)}.{mod}.weight"


def peft_name(i, mod, ab):
    """Adapter names as PEFT saves them (adapter_model.safetensors: no `.default`)."""
    return f"base_model.model.model.layers.{i}.{_sub(mod)}.{mod}.lora_{ab}.weight"


def lora_modules(cfg):
    """(layer, target) in PEFT / optimizer order: layer 0 q,k,v,o,gate,up,down, then layer 1."""
    return [(i, m) for i in range(cfg["num_hidden_layers"]) for m in TARGETS]


def lora_names(cfg):
    return [peft_name(i, m, ab) for i, m in lora_modules(cfg) for ab in ("A", "B")]


def in_out(cfg, mod):
    shapes = G.llama_param_shapes(cfg)
    out_f, in_f = shapes[base_name(0, mod)]
    return in_f, out_f


# ---------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------


def base_setup():
    """Exactly the llama_untied parameters and batch of generate.py (same seed, same order)."""
    cfg = G.llama_config(tied=False)
    V = cfg["vocab_size"]
    G.seed_for(BASE_FIXTURE)
    init = G.llama_init(cfg)
    ids = torch.randint(0, V, (2, 9))
    labels = ids.clone()
    labels[1, 7] = -100
    return cfg, init, ids, labels


def lora_init_peft(cfg):
    """PEFT LoraLayer.reset_lora_parameters(init_lora_weights=True), in module order."""
    G.seed_for(FIXTURE)
    L = OrderedDict()
    for i, mod in lora_modules(cfg):
        in_f, out_f = in_out(cfg, mod)
        a = torch.empty(LORA["r"], in_f)
        torch.nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # U(-1/sqrt(in), 1/sqrt(in))
        b = torch.zeros(out_f, LORA["r"])
        L[peft_name(i, mod, "A")] = a
        L[peft_name(i, mod, "B")] = b
    return L


def lora_b_nonzero(cfg):
    """The non-zero-B variant: every lora_B drawn with normal_(0, 0.02), in module order."""
    G.seed_for(FIXTURE + ".lora_B_nonzero")
    out = OrderedDict()
    for i, mod in lora_modules(cfg):
        _, out_f = in_out(cfg, mod)
        b = torch.empty(out_f, LORA["r"])
        torch.nn.init.normal_(b, mean=0.0, std=B_NONZERO_STD)
        out[peft_name(i, mod, "B")] = b
    return out


def lora_forward(cfg, P, L, ids, rank=None, mlp_width=None, base=None):
    """llama_forward of generate.py with every target Linear replaced by the PEFT LoRA Linear.

    P: base params (frozen), L: PEFT name -> lora_A (r, in) / lora_B (out, r).
    rank: target -> active rank (A[:r], B[:, :r]); scaling stays alpha / r_max.
    mlp_width: per layer, active intermediate width w (gate/up: first w output rows of W
    and lora_B; down: first w input columns of W and lora_A).
    base: the frozen base products x @ W.T (projections and LM head), default float32
    (generate_bf16.py passes its bf16-input product).
    """
    base = base or (lambda x, W: x @ W.T)
    rank = rank or {}
    Bsz, T = ids.shape
    Hq, Hkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    eps = cfg["rms_norm_eps"]
    cos, sin = G.rope_cos_sin(torch.arange(T), D, cfg["rope_theta"])
    dt = P["model.norm.weight"].dtype
    cos, sin = cos.to(dt), sin.to(dt)

    def lin(x, i, mod):
        W = P[base_name(i, mod)]
        A = L[peft_name(i, mod, "A")]
        B = L[peft_name(i, mod, "B")]
        r = rank.get(mod, A.shape[0])
        A, B = A[:r], B[:, :r]
        if mlp_width is not None:
            w = mlp_width[i]
            if mod in ("gate_proj", "up_proj"):
                W, B = W[:w], B[:w]
            elif mod == "down_proj":
                W, A = W[:, :w], A[:, :w]
        # PEFT: result = base_layer(x); result = result + lora_B(lora_A(dropout(x))) * scaling
        return base(x, W) + ((x @ A.T) @ B.T) * SCALING

    h = F.embedding(ids, P["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        a = G.rmsnorm(h, P[p + "input_layernorm.weight"], eps)
        q = lin(a, i, "q_proj").view(Bsz, T, Hq, D)
        k = lin(a, i, "k_proj").view(Bsz, T, Hkv, D)
        v = lin(a, i, "v_proj").view(Bsz, T, Hkv, D)
        q = G.apply_rope(q, cos, sin)
        k = G.apply_rope(k, cos, sin)
        o = G.attention(q, k, v).reshape(Bsz, T, Hq * D)
        h = h + lin(o, i, "o_proj")
        m = G.rmsnorm(h, P[p + "post_attention_layernorm.weight"], eps)
        gate = lin(m, i, "gate_proj")
        up = lin(m, i, "up_proj")
        h = h + lin(F.silu(gate) * up, i, "down_proj")
    h = G.rmsnorm(h, P["model.norm.weight"], eps)
    return base(h, P["lm_head.weight"])


def leaves(L):
    return OrderedDict((n, t.detach().clone().requires_grad_(True)) for n, t in L.items())


def frozen(P):
    return OrderedDict((n, t.detach().clone().requires_grad_(False)) for n, t in P.items())


def train(cfg, P, L0, ids, labels, forward=None):
    """10 AdamW steps on the LoRA params only. Returns (losses, final LoRA, step-0 grads).

    forward(cfg, P, L, ids) -> float32 logits, default lora_forward (generate_bf16.py passes its bf16 ones).
    """
    forward = forward or lora_forward
    V = cfg["vocab_size"]
    L = leaves(L0)
    opt = torch.optim.AdamW(
        list(L.values()),
        lr=ADAMW["lr"],
        betas=(ADAMW["beta1"], ADAMW["beta2"]),
        eps=ADAMW["eps"],
        weight_decay=ADAMW["weight_decay"],
        foreach=False,
    )
    losses, grad0 = [], None
    for step in range(STEPS):
        opt.zero_grad()
        loss = G.causal_lm_loss(forward(cfg, P, L, ids), labels, V)
        loss.backward()
        losses.append(loss.detach().clone())
        if step == 0:
            grad0 = OrderedDict((n, t.grad.detach().clone()) for n, t in L.items())
        opt.step()
    final = OrderedDict((n, t.detach().clone()) for n, t in L.items())
    return torch.stack(losses), final, grad0


def elastic(cfg, P, L0, ids, labels):
    V = cfg["vocab_size"]
    L = leaves(L0)
    logits = lora_forward(cfg, P, L, ids, rank=ELASTIC_RANK, mlp_width=ELASTIC_MLP_WIDTH)
    loss = G.causal_lm_loss(logits, labels, V)
    loss.backward()
    grads = OrderedDict((n, t.grad.detach().clone()) for n, t in L.items())
    return logits.detach(), loss.detach(), grads


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------


def build():
    cfg, init, ids, labels = base_setup()
    V = cfg["vocab_size"]
    P = frozen(init)

    L_peft = lora_init_peft(cfg)  # genuine PEFT init: B = 0
    B_nz = lora_b_nonzero(cfg)
    L_start = OrderedDict((n, B_nz.get(n, t)) for n, t in L_peft.items())  # training start

    with torch.no_grad():
        zero_b_logits = lora_forward(cfg, P, L_peft, ids)

    Ls = leaves(L_start)
    logits0 = lora_forward(cfg, P, Ls, ids)
    losses, final, grad0 = train(cfg, P, L_start, ids, labels)
    el_logits, el_loss, el_grads = elastic(cfg, P, L_start, ids, labels)

    Tn = OrderedDict()
    for n, t in init.items():
        Tn["param." + n] = t
    Tn["input_ids"] = ids.to(torch.int32)
    Tn["labels"] = labels.to(torch.int32)
    for n, t in L_peft.items():
        Tn["lora_init." + n] = t
    for n, t in B_nz.items():
        Tn["lora_init_nonzero_b." + n] = t
    Tn["zero_b_logits"] = zero_b_logits
    Tn["logits_step0"] = logits0.detach()
    for n, g in grad0.items():
        Tn["grad_step0." + n] = g
    Tn["losses"] = losses
    for n, t in final.items():
        Tn["lora_final." + n] = t
    Tn["elastic.logits"] = el_logits
    Tn["elastic.loss"] = el_loss
    for n, g in el_grads.items():
        Tn["elastic.grad." + n] = g

    M = OrderedDict()
    M["torch_version"] = torch.__version__
    M["generator"] = GENERATOR
    M["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE", "")
    M["format_note"] = "float32 little-endian; integer tensors I32"
    M["config"] = json.dumps(cfg, separators=(",", ":"))
    M["base_fixture"] = BASE_FIXTURE
    M["lora.r"] = str(LORA["r"])
    M["lora.alpha"] = str(LORA["alpha"])
    M["lora.scaling"] = repr(SCALING)
    M["lora.dropout"] = repr(LORA["dropout"])
    M["lora.bias"] = "none"
    M["lora.target_modules"] = json.dumps(list(TARGETS), separators=(",", ":"))
    M["lora.init_a"] = "kaiming_uniform_(a=sqrt(5)) on (r, in): U(-1/sqrt(in), 1/sqrt(in))"
    M["lora.init_b"] = "zeros (lora_init.*); normal_(0, 0.02) (lora_init_nonzero_b.*)"
    M["lora.b_nonzero_std"] = repr(B_NONZERO_STD)
    M["adamw.steps"] = str(STEPS)
    for k, v in ADAMW.items():
        M["adamw." + k] = repr(v)
    M["ignore_index"] = "-100"
    M["elastic.rank"] = json.dumps(ELASTIC_RANK, separators=(",", ":"))
    M["elastic.mlp_width"] = json.dumps(list(ELASTIC_MLP_WIDTH), separators=(",", ":"))
    M["elastic.scaling"] = repr(SCALING)

    extra = dict(cfg=cfg, init=init, ids=ids, labels=labels, L_peft=L_peft, L_start=L_start)
    return Tn, M, extra


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------


def maxdiff(a, b):
    return (a.double() - b.double()).abs().max().item()


def merged_forward64(cfg, init, L, rank=None, mlp_width=None, ids=None):
    """Independent float64 reference: merge W + s * B[:, :r] @ A[:r], slice the MLP, and run
    generate.py's plain llama_forward (no LoRA code path)."""
    rank = rank or {}
    P = OrderedDict((n, t.double()) for n, t in init.items())
    for i, mod in lora_modules(cfg):
        A = L[peft_name(i, mod, "A")].double()
        B = L[peft_name(i, mod, "B")].double()
        r = rank.get(mod, A.shape[0])
        W = P[base_name(i, mod)] + SCALING * (B[:, :r] @ A[:r])
        if mlp_width is not None:
            w = mlp_width[i]
            if mod in ("gate_proj", "up_proj"):
                W = W[:w]
            elif mod == "down_proj":
                W = W[:, :w]
        P[base_name(i, mod)] = W
    return G.llama_forward(cfg, P, ids)


def self_check(Tn, M, buf):
    path = os.path.join(FIXTURES, FIXTURE + ".safetensors")
    with open(path, "rb") as f:
        disk = f.read()
    assert disk == buf, f"{path}: file on disk differs from what was encoded"
    assert len(buf) < MAX_BYTES, f"{path}: {len(buf)} bytes is too large"
    got, gmeta = G.decode_safetensors(buf)
    assert list(got.keys()) == list(Tn.keys()), "tensor names/order differ"
    assert dict(gmeta) == dict(M), "metadata differs"
    for k, t in Tn.items():
        exp = t.detach().numpy()
        a = got[k]
        assert tuple(a.shape) == tuple(t.shape), f"{k}: shape"
        assert np.array_equal(a.astype(exp.dtype), exp), f"{k}: values do not round-trip"
    print(f"  {FIXTURE}.safetensors: {len(buf)} bytes, {len(got)} tensors, round-trip ok")


def cross_checks(Tn, extra):
    cfg, init, ids, labels = extra["cfg"], extra["init"], extra["ids"], extra["labels"]
    L_peft, L_start = extra["L_peft"], extra["L_start"]
    V = cfg["vocab_size"]
    names = lora_names(cfg)

    # 1. Base = llama_untied, and the zero-B model is exactly the base model.
    base_logits = G.llama_forward(cfg, init, ids)
    assert torch.equal(Tn["zero_b_logits"], base_logits), "zero_b_logits != base logits"
    print("  zero_b_logits == base-model logits (llama_forward): exact (torch.equal)")
    base_path = os.path.join(FIXTURES, BASE_FIXTURE + ".safetensors")
    if os.path.exists(base_path):
        with open(base_path, "rb") as f:
            bt, _ = G.decode_safetensors(f.read())
        for n, t in init.items():
            assert np.array_equal(bt["param." + n], t.numpy()), f"param {n} != {BASE_FIXTURE}"
        assert np.array_equal(bt["input_ids"], Tn["input_ids"].numpy())
        assert np.array_equal(bt["labels"], Tn["labels"].numpy())
        same = np.array_equal(bt["logits"], Tn["zero_b_logits"].numpy())
        print(f"  base params / input_ids / labels == {BASE_FIXTURE}.safetensors: exact; "
              f"zero_b_logits == its logits: {'exact' if same else 'NOT bit-identical'}")
        assert same, f"zero_b_logits differ from {BASE_FIXTURE}.safetensors logits"
    else:
        print(f"  (skipped: {base_path} not found)")

    # 2. PEFT init ranges / invariants.
    for i, mod in lora_modules(cfg):
        in_f, _ = in_out(cfg, mod)
        a = L_peft[peft_name(i, mod, "A")]
        assert a.abs().max().item() <= 1.0 / math.sqrt(in_f), "lora_A outside kaiming bound"
        assert not L_peft[peft_name(i, mod, "B")].any(), "PEFT lora_B not zero"

    # 3. Elastic slicing code with the full configuration reproduces the plain LoRA forward.
    with torch.no_grad():
        full = lora_forward(cfg, init, L_start, ids, rank={m: LORA["r"] for m in TARGETS},
                            mlp_width=[cfg["intermediate_size"]] * cfg["num_hidden_layers"])
    assert torch.equal(full, Tn["logits_step0"]), "full elastic config != logits_step0"

    # 4. Elastic gradients are zero outside the active slices (and not zero inside).
    r, w0 = LORA["r"], ELASTIC_MLP_WIDTH
    for i, mod in lora_modules(cfg):
        gA = Tn["elastic.grad." + peft_name(i, mod, "A")]
        gB = Tn["elastic.grad." + peft_name(i, mod, "B")]
        ra = ELASTIC_RANK.get(mod, r)
        maskA = torch.zeros_like(gA, dtype=torch.bool)
        maskB = torch.zeros_like(gB, dtype=torch.bool)
        maskA[:ra] = True
        maskB[:, :ra] = True
        if mod in ("gate_proj", "up_proj"):
            maskB[w0[i]:] = False
        if mod == "down_proj":
            maskA[:, w0[i]:] = False
        assert not gA[~maskA].any() and not gB[~maskB].any(), f"elastic grad leak {i}.{mod}"
        assert gA[maskA].abs().min().item() > 0 and gB[maskB].abs().min().item() > 0, \
            f"elastic grad has zeros inside the active slice {i}.{mod}"
    # ... and every step-0 gradient entry is non-zero (the point of the non-zero B).
    for n in names:
        assert Tn["grad_step0." + n].abs().min().item() > 0, f"zero entry in grad_step0.{n}"
    print("  elastic: full-width/full-rank slicing == logits_step0 (exact); elastic grads zero "
          "exactly outside the active slices; grad_step0 has no zero entry")

    # 5. Float64 re-runs of the same LoRA code path + an independent merged-weight reference.
    P64 = OrderedDict((n, t.double()) for n, t in init.items())
    with torch.no_grad():
        z64 = lora_forward(cfg, P64, OrderedDict((n, t.double()) for n, t in L_peft.items()), ids)
    print(f"  zero_b_logits   f32 vs f64 max |diff| {maxdiff(z64, Tn['zero_b_logits']):.2e}")

    L64 = OrderedDict((n, t.double().requires_grad_(True)) for n, t in L_start.items())
    lg64 = lora_forward(cfg, P64, L64, ids)
    loss64 = G.causal_lm_loss(lg64, labels, V)
    loss64.backward()
    ref64 = merged_forward64(cfg, init, L_start, ids=ids)
    el = maxdiff(lg64, Tn["logits_step0"])
    eloss = abs(loss64.item() - Tn["losses"][0].item())
    eg = max(maxdiff(L64[n].grad, Tn["grad_step0." + n]) for n in names)
    gs = max(Tn["grad_step0." + n].abs().max().item() for n in names)
    em = maxdiff(ref64, lg64)
    print(f"  logits_step0    f32 vs f64 max |diff| {el:.2e} (max |logit| "
          f"{Tn['logits_step0'].abs().max().item():.2f}); loss {eloss:.2e}; grad_step0 {eg:.2e} "
          f"(max |grad| {gs:.2e}); f64 LoRA vs f64 merged W+s*BA {em:.1e}")
    assert el < 1e-4 and eloss < 1e-5 and eg < 1e-4 * max(1.0, gs) and em < 1e-10

    # Elastic in float64.
    L64 = OrderedDict((n, t.double().requires_grad_(True)) for n, t in L_start.items())
    elg64 = lora_forward(cfg, P64, L64, ids, rank=ELASTIC_RANK, mlp_width=ELASTIC_MLP_WIDTH)
    elloss64 = G.causal_lm_loss(elg64, labels, V)
    elloss64.backward()
    eref64 = merged_forward64(cfg, init, L_start, ELASTIC_RANK, ELASTIC_MLP_WIDTH, ids=ids)
    e_l = maxdiff(elg64, Tn["elastic.logits"])
    e_loss = abs(elloss64.item() - Tn["elastic.loss"].item())
    e_g = max(maxdiff(L64[n].grad, Tn["elastic.grad." + n]) for n in names)
    e_m = maxdiff(eref64, elg64)
    moved = maxdiff(Tn["elastic.logits"], Tn["logits_step0"])
    print(f"  elastic         f32 vs f64 max |diff| logits {e_l:.2e}, loss {e_loss:.2e}, "
          f"grads {e_g:.2e}; f64 LoRA vs f64 merged+sliced {e_m:.1e}; "
          f"elastic vs full logits differ by {moved:.3f}")
    assert e_l < 1e-4 and e_loss < 1e-5 and e_g < 1e-4 and e_m < 1e-10 and moved > 1e-2

    # Training in float64 (same init, same AdamW), tolerance guidance for the curve.
    losses64, final64, _ = train(cfg, P64, OrderedDict((n, t.double()) for n, t in L_start.items()),
                                 ids, labels)
    ecurve = maxdiff(losses64, Tn["losses"])
    efinal = max(maxdiff(final64[n], Tn["lora_final." + n]) for n in names)
    n_out = sum(int(((final64[n] - Tn["lora_final." + n].double()).abs() > 1e-6).sum()) for n in names)
    n_all = sum(Tn["lora_final." + n].numel() for n in names)
    losses = Tn["losses"]
    print(f"  training        f32 vs f64 max |diff| losses {ecurve:.2e}, lora_final {efinal:.2e} "
          f"({n_out} of {n_all} entries > 1e-6: AdamW's m/sqrt(v) amplifies f32 noise where a gradient entry is near 0); "
          f"loss {losses[0].item():.4f} -> {losses[-1].item():.4f} in {STEPS} AdamW steps")
    assert ecurve < 1e-4 and efinal < 1e-4
    assert losses[-1].item() < losses[0].item(), "AdamW did not reduce the loss"
    assert abs(losses[0].item() - G.causal_lm_loss(Tn["logits_step0"], labels, V).item()) < 1e-6


def main():
    G.setup_torch()
    print(f"torch {torch.__version__}, numpy {np.__version__}, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    Tn, M, extra = build()
    buf = G.encode_safetensors(Tn, M)
    Tn2, M2, _ = build()
    assert G.encode_safetensors(Tn2, M2) == buf, "generation is not deterministic"

    os.makedirs(FIXTURES, exist_ok=True)
    path = os.path.join(FIXTURES, FIXTURE + ".safetensors")
    with open(path, "wb") as f:
        f.write(buf)
    print(f"wrote {os.path.relpath(path)}")

    print("self-check:")
    self_check(Tn, M, buf)
    print("cross-checks:")
    cross_checks(Tn, extra)
    print("ok")


if __name__ == "__main__":
    main()
