"""Prefill and decode speed of llama.cpp and of Orion's host path, side by side, same shapes.

For a preset (stories110m: Llama; gpt2-124m: GPT-2), writes a GGUF file with random fp16
weights of that preset's shapes (the values do not matter for speed) and the real tokenizer
from ../shared/data, runs llama.cpp (through llama-cpp-python, built from source by pip)
for a P-token prompt (prefill, timed) and N greedy decode steps on T threads, then runs
`orion bench inference` for the same preset, prompt, threads and token count, and prints one
JSON object with both speeds, their ratios, Orion's CPU kernel level (ORION_CPU forces one)
and its memory-bandwidth probe. `--busy` runs one competing busy process through both
measurements (the oversubscribed case). Run from the project root after
`cargo build --release`:

    pip install llama-cpp-python gguf sentencepiece
    python3 bench/llamacpp_decode.py --preset stories110m --prompt 256 --tokens 256 --threads 2

To compare at the AVX2 level on an AVX-512 machine, build llama.cpp for AVX2 only and force
Orion's level:

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF" \
        pip install --no-cache-dir llama-cpp-python
    ORION_CPU=avx2 python3 bench/llamacpp_decode.py ...

Not run by CI (it needs the Python packages).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")

PRESETS = {
    "stories110m": dict(arch="llama", dim=768, hidden=2048, layers=12, heads=12, kv_heads=12, vocab=32000, ctx=1024),
    "stories15m": dict(arch="llama", dim=288, hidden=768, layers=6, heads=6, kv_heads=6, vocab=32000, ctx=256),
    "gpt2-124m": dict(arch="gpt2", dim=768, hidden=3072, layers=12, heads=12, kv_heads=12, vocab=50257, ctx=1024),
}


def llama_tokenizer(w, vocab):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "llama2-tokenizer.model"))
    tokens, scores, types = [], [], []
    for i in range(vocab):
        tokens.append(sp.id_to_piece(i).encode())
        scores.append(sp.get_score(i))
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i) else 1)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def gpt2_tokenizer(w, vocab):
    with open(os.path.join(SHARED, "gpt2-vocab.json")) as f:
        ids = json.load(f)
    tokens = [None] * vocab
    for t, i in ids.items():
        tokens[i] = t
    with open(os.path.join(SHARED, "gpt2-merges.txt")) as f:
        merges = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#version")]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types([1] * vocab)
    w.add_token_merges(merges)
    w.add_bos_token_id(50256)
    w.add_eos_token_id(50256)


def write_gguf(path, p):
    import gguf
    rng = np.random.default_rng(0)
    rand = lambda *shape: (rng.standard_normal(shape) * 0.02).astype(np.float16)
    ones = lambda n: np.ones(n, dtype=np.float32)
    zeros = lambda n: np.zeros(n, dtype=np.float32)
    d, h, L = p["dim"], p["hidden"], p["layers"]
    w = gguf.GGUFWriter(path, p["arch"])
    w.add_context_length(p["ctx"])
    w.add_embedding_length(d)
    w.add_block_count(L)
    w.add_feed_forward_length(h)
    w.add_head_count(p["heads"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    if p["arch"] == "llama":
        w.add_head_count_kv(p["kv_heads"])
        w.add_rope_dimension_count(d // p["heads"])
        w.add_layer_norm_rms_eps(1e-5)
        llama_tokenizer(w, p["vocab"])
        w.add_tensor("token_embd.weight", rand(p["vocab"], d))
        w.add_tensor("output_norm.weight", ones(d))
        w.add_tensor("output.weight", rand(p["vocab"], d))
        for i in range(L):
            b = f"blk.{i}."
            w.add_tensor(b + "attn_norm.weight", ones(d))
            for n in ["attn_q", "attn_k", "attn_v", "attn_output"]:
                w.add_tensor(b + n + ".weight", rand(d, d))
            w.add_tensor(b + "ffn_norm.weight", ones(d))
            w.add_tensor(b + "ffn_gate.weight", rand(h, d))
            w.add_tensor(b + "ffn_up.weight", rand(h, d))
            w.add_tensor(b + "ffn_down.weight", rand(d, h))
    else:
        w.add_layer_norm_eps(1e-5)
        gpt2_tokenizer(w, p["vocab"])
        w.add_tensor("token_embd.weight", rand(p["vocab"], d))
        w.add_tensor("position_embd.weight", rand(p["ctx"], d))
        w.add_tensor("output_norm.weight", ones(d))
        w.add_tensor("output_norm.bias", zeros(d))
        w.add_tensor("output.weight", rand(p["vocab"], d))
        for i in range(L):
            b = f"blk.{i}."
            w.add_tensor(b + "attn_norm.weight", ones(d))
            w.add_tensor(b + "attn_norm.bias", zeros(d))
            w.add_tensor(b + "attn_qkv.weight", rand(3 * d, d))
            w.add_tensor(b + "attn_qkv.bias", zeros(3 * d))
            w.add_tensor(b + "attn_output.weight", rand(d, d))
            w.add_tensor(b + "attn_output.bias", zeros(d))
            w.add_tensor(b + "ffn_norm.weight", ones(d))
            w.add_tensor(b + "ffn_norm.bias", zeros(d))
            w.add_tensor(b + "ffn_up.weight", rand(h, d))
            w.add_tensor(b + "ffn_up.bias", zeros(h))
            w.add_tensor(b + "ffn_down.weight", rand(d, h))
            w.add_tensor(b + "ffn_down.bias", zeros(d))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_run(path, prompt_len, tokens, threads, vocab):
    """Prefill and decode tokens/s of llama.cpp, and its build's feature line."""
    import llama_cpp
    from llama_cpp import Llama
    # n_batch = n_ctx: the whole prompt is one batch, and llama-cpp-python keeps the last
    # logits in a row indexed by position, which must exist.
    n_ctx = prompt_len + tokens + 8
    llm = Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                n_ctx=n_ctx, n_batch=n_ctx, verbose=False)
    prompt = [int(t) for t in np.random.default_rng(1).integers(3, vocab, prompt_len)]
    llm.eval(prompt[:8])  # warm-up
    llm.reset()
    start = time.perf_counter()
    llm.eval(prompt)
    prefill = prompt_len / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(tokens):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([token])
    decode = tokens / (time.perf_counter() - start)
    return prefill, decode, llama_cpp.llama_print_system_info().decode().strip()


def busy_neighbour():
    """A process that keeps one core busy until killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="stories110m", choices=sorted(PRESETS))
    ap.add_argument("--prompt", type=int, default=256, help="prompt tokens (prefill)")
    ap.add_argument("--tokens", type=int, default=256, help="decoded tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--busy", action="store_true", help="run one competing busy process throughout")
    ap.add_argument("--orion", default=os.path.join("target", "release", "orion"))
    args = ap.parse_args()
    p = PRESETS[args.preset]
    neighbour = busy_neighbour() if args.busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.gguf")
            write_gguf(path, p)
            ll_prefill, ll_decode, ll_info = llamacpp_run(path, args.prompt, args.tokens, args.threads, p["vocab"])
        out = subprocess.run([args.orion, "bench", "inference", "--preset", args.preset, "--mode", "cpu",
                              "--prompt-tokens", str(args.prompt), "--tokens", str(args.tokens),
                              "--threads", str(args.threads), "--precision", "f16"],
                             capture_output=True, text=True, check=True)
    finally:
        if neighbour:
            neighbour.kill()
    orion = json.loads(out.stdout)
    print(json.dumps({"preset": args.preset, "threads": args.threads, "prompt_tokens": args.prompt,
                      "decode_tokens": args.tokens, "busy_neighbour": args.busy,
                      "llamacpp_build": ll_info,
                      "orion_cpu_level": orion.get("cpu_level"),
                      "llamacpp_f16_prefill_tok_s": ll_prefill,
                      "orion_f16_prefill_tok_s": orion["prefill_tokens_per_s"],
                      "prefill_orion_over_llamacpp": orion["prefill_tokens_per_s"] / ll_prefill,
                      "llamacpp_f16_decode_tok_s": ll_decode,
                      "orion_f16_decode_tok_s": orion["decode_tokens_per_s"],
                      "decode_orion_over_llamacpp": orion["decode_tokens_per_s"] / ll_decode,
                      "orion_bandwidth_probe_gb_s": orion.get("bandwidth_probe_gb_s"),
                      "orion_decode_fraction_of_bandwidth": orion.get("decode_fraction_of_bandwidth")}))


if __name__ == "__main__":
    sys.exit(main())
