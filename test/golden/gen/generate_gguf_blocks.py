"""Reference ggml block bytes (q8_0, q4_0, q4_1) for test/export/gguf-blocks.test.ts.

Quantizes seeded float32 rows with llama.cpp's own gguf-py reference quantizer (gguf/quants.py, which
llama.cpp's tests check bit-exact against ggml-quants.c's quantize_row_*_ref), taken from the llama.cpp
source that node-llama-cpp 3.21.1 bundles, and writes test/golden/fixtures/gguf_blocks.json.

    git clone -q test/engines/llama-cpp/node_modules/node-llama-cpp/llama/gitRelease.bundle /tmp/llama.cpp
    python3 test/golden/gen/generate_gguf_blocks.py /tmp/llama.cpp/gguf-py

Needs only numpy (Debian python3-numpy; written with numpy 2.4.6). Before writing, every block is also
checked byte for byte against the C reference itself, quantize_row_*_ref of the prebuilt libggml-base.so in
node-llama-cpp 3.21.1's linux-x64 package (ctypes), when that package is installed.
"""
import base64, ctypes, json, sys, zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, sys.argv[1])
from gguf import quants  # noqa: E402
from gguf.constants import GGMLQuantizationType as Q  # noqa: E402

COLS = 64
def rows():
    """name → (rows, 64) float32: ordinary values, and the cases where rounding decides."""
    out = {}
    rng = np.random.default_rng(zlib.crc32(b"gguf-blocks"))
    out["normal"] = rng.standard_normal((8, COLS)).astype(np.float32)
    out["wide"] = (rng.standard_normal((4, COLS)) * np.float32(1e3)).astype(np.float32)
    out["tiny"] = (rng.standard_normal((4, COLS)) * np.float32(1e-6)).astype(np.float32)  # subnormal F16 scales
    special = np.zeros((6, COLS), np.float32)
    special[1] = 0.25  # constant row: q4_1 d = 0
    special[2] = np.linspace(-1, 1, COLS, dtype=np.float32)
    special[3, ::2] = 3.0; special[3, 1::2] = -3.0  # ties of |max| (first one wins in q4_0)
    special[4] = np.arange(COLS, dtype=np.float32) / np.float32(2) - np.float32(16)  # halves: x/d lands on .5
    special[5] = rng.integers(-127, 128, COLS).astype(np.float32) / np.float32(127)
    out["special"] = special
    return out

ROOT = Path(__file__).resolve().parents[3]
LIBGGML = ROOT / "test/engines/llama-cpp/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so"
BLOCK_BYTES = {Q.Q8_0: 34, Q.Q4_0: 18, Q.Q4_1: 20}

def c_reference(lib, x, t):
    """ggml-quants.c's quantize_row_<t>_ref over the whole (rows, COLS) array."""
    fn = getattr(lib, f"quantize_row_{t.name.lower()}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    x = np.ascontiguousarray(x, np.float32)
    out = np.zeros(x.size // 32 * BLOCK_BYTES[t], np.uint8)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out

def main():
    lib = ctypes.CDLL(str(LIBGGML)) if LIBGGML.exists() else None
    fixture = {"generator": "test/golden/gen/generate_gguf_blocks.py", "cols": COLS,
               "checked_against_c_reference": lib is not None, "cases": {}}
    for name, x in rows().items():
        case = {"shape": list(x.shape), "f32": base64.b64encode(x.tobytes()).decode()}
        for t in (Q.Q8_0, Q.Q4_0, Q.Q4_1):
            b = quants.quantize(x, t)
            if lib is not None and not np.array_equal(b.reshape(-1), c_reference(lib, x, t)):
                raise SystemExit(f"{name} {t.name}: gguf-py and ggml's C reference disagree")
            case[t.name.lower()] = base64.b64encode(b.tobytes()).decode()
        fixture["cases"][name] = case
    dst = Path(__file__).resolve().parents[1] / "fixtures" / "gguf_blocks.json"
    dst.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {dst} ({dst.stat().st_size} bytes; C reference check: {'done' if lib else 'skipped, engine not installed'})")

if __name__ == "__main__":
    main()
