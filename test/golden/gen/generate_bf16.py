#!/usr/bin/python3
"""Golden bf16-compute LoRA training fixture for lonas (PyTorch reference values).

Regenerate (from the repository root):

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 test/golden/gen/generate_bf16.py

Writes test/golden/fixtures/lora_bf16.safetensors: the 10 LoRA AdamW steps of lora_train.safetensors
(generate_lora.py: same base, batch, non-zero-B start, optimizer) run twice more:
  losses_autocast     under torch.autocast('cpu', dtype=torch.bfloat16) (PyTorch's CPU bf16 mixed
                      precision: every matmul, the adapters' too, takes bf16 inputs and returns bf16)
  losses_bf16_inputs  lonas's `--compute bf16`: each frozen base product (projections, LM head) rounds x and
                      W to bf16 and accumulates in float32, and its input gradient rounds dY to bf16
                      (dX = bf16(dY) @ bf16(W), float32); everything else float32
  logits_bf16_inputs  the step-0 logits of the second
and losses_f32 (the float32 curve of lora_train, recomputed) to show how far each lies from it.
Pinned like generate_lora.py (Debian torch 1.13, one thread, deterministic algorithms).
"""

import os

os.environ.setdefault("OPENBLAS_CORETYPE", "SkylakeX")

import json
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import generate as G  # noqa: E402
import generate_lora as GL  # noqa: E402

FIXTURE = "lora_bf16"
GENERATOR = "test/golden/gen/generate_bf16.py"
MAX_BYTES = 100_000


def bf16(t):
    """t rounded to bfloat16 (nearest even) and widened back to float32."""
    return t.to(torch.bfloat16).to(torch.float32)


class Bf16Product(torch.autograd.Function):
    """y = bf16(x) @ bf16(W).T in float32; dx = bf16(dy) @ bf16(W) in float32; W frozen."""

    @staticmethod
    def forward(ctx, x, W):
        Wr = bf16(W)
        ctx.save_for_backward(Wr)
        return bf16(x) @ Wr.T

    @staticmethod
    def backward(ctx, dy):
        (Wr,) = ctx.saved_tensors
        return bf16(dy) @ Wr, None


def bf16_inputs_forward(cfg, P, L, ids):
    return GL.lora_forward(cfg, P, L, ids, base=Bf16Product.apply)


def autocast_forward(cfg, P, L, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = GL.lora_forward(cfg, P, L, ids)
    return logits.float()


def build():
    cfg, init, ids, labels = GL.base_setup()
    P = GL.frozen(init)
    L_peft = GL.lora_init_peft(cfg)
    B_nz = GL.lora_b_nonzero(cfg)
    L_start = OrderedDict((n, B_nz.get(n, t)) for n, t in L_peft.items())
    with torch.no_grad():
        logits0 = bf16_inputs_forward(cfg, P, L_start, ids)
    Tn = OrderedDict()
    Tn["losses_f32"] = GL.train(cfg, P, L_start, ids, labels)[0]
    Tn["losses_autocast"] = GL.train(cfg, P, L_start, ids, labels, autocast_forward)[0]
    Tn["losses_bf16_inputs"] = GL.train(cfg, P, L_start, ids, labels, bf16_inputs_forward)[0]
    Tn["logits_bf16_inputs"] = logits0
    M = OrderedDict()
    M["torch_version"] = torch.__version__
    M["generator"] = GENERATOR
    M["openblas_coretype"] = os.environ.get("OPENBLAS_CORETYPE", "")
    M["format_note"] = "float32 little-endian"
    M["training_fixture"] = GL.FIXTURE
    M["adamw.steps"] = str(GL.STEPS)
    M["config"] = json.dumps(cfg, separators=(",", ":"))
    return Tn, M


def main():
    G.setup_torch()
    print(f"torch {torch.__version__}, numpy {np.__version__}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    Tn, M = build()
    buf = G.encode_safetensors(Tn, M)
    assert G.encode_safetensors(*build()) == buf, "generation is not deterministic"
    assert len(buf) < MAX_BYTES, f"{len(buf)} bytes is too large"
    path = os.path.join(GL.FIXTURES, FIXTURE + ".safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(buf)
    os.replace(path + ".tmp", path)
    got, meta = G.decode_safetensors(buf)
    assert list(got) == list(Tn) and dict(meta) == dict(M), "tensors or metadata do not round-trip"
    for k, t in Tn.items():
        assert np.array_equal(got[k], t.detach().numpy()), f"{k}: values do not round-trip"
    f32 = Tn["losses_f32"]
    for k in ("losses_autocast", "losses_bf16_inputs"):
        rel = ((Tn[k] - f32).abs() / f32).max().item()
        print(f"  {k}: {Tn[k][0].item():.5f} -> {Tn[k][-1].item():.5f}; max relative difference to float32 {rel:.2e}")
    print(f"wrote {os.path.relpath(path)} ({len(buf)} bytes); ok")


if __name__ == "__main__":
    main()
