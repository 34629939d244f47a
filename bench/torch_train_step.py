"""Training-step time of PyTorch and of Orion's host path, side by side, on the same shapes.

GPT-2 124M (or Stories110M with --preset stories110m), batch B x seq T random tokens, one
AdamW step (forward, backward, clip to norm 1, update) per iteration, on T threads:
PyTorch in f32, PyTorch with bf16 autocast (matrix products in bf16, master weights f32),
then `orion bench training --device cpu` with --precision f32 and bf16. Prints one JSON
object with every median step time and Orion's speed-up over each PyTorch variant. Run from
the project root after `cargo build --release`:

    pip install torch transformers
    python3 bench/torch_train_step.py --preset gpt2-124m --batch 4 --seq 64 --threads 2

`--isa avx2` holds both sides to AVX2 on an AVX-512 machine (ORION_CPU=avx2 for Orion;
ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS and ONEDNN_MAX_CPU_ISA for PyTorch), the way an
AVX2-only CPU would run them. The JSON names the level each side used.

Not run by CI (it needs the Python packages). For reference, the issue's baseline: llm.c's
CPU trainer takes ~2.8 s per GPT-2 124M step at B=4, T=64 on this machine.
"""
import argparse
import json
import os
import statistics
import subprocess
import time


def torch_model(preset):
    import transformers as tf
    if preset == "gpt2-124m":
        cfg = tf.GPT2Config(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024,
                            resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        return tf.GPT2LMHeadModel(cfg), 50257
    if preset == "stories110m":
        cfg = tf.LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                             num_attention_heads=12, num_key_value_heads=12, vocab_size=32000,
                             max_position_embeddings=1024, tie_word_embeddings=False)
        return tf.LlamaForCausalLM(cfg), 32000
    raise SystemExit(f"unknown preset {preset}")


def torch_steps(preset, batch, seq, steps, bf16):
    import torch
    torch.manual_seed(0)
    model, vocab = torch_model(preset)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    ids = torch.randint(0, vocab, (batch, seq + 1))
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids[:, :-1], labels=ids[:, 1:].contiguous()).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if i > 0:  # the first step warms up allocations and kernels
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def orion_step(preset, batch, seq, steps, precision, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        ["target/release/orion", "bench", "training", "--preset", preset, "--device", "cpu",
         "--precision", precision, "--batch", str(batch), "--seq", str(seq), "--steps", str(steps)],
        check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="gpt2-124m")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--isa", choices=["native", "avx2"], default="native",
                    help="avx2: limit both sides to AVX2 (see the module doc)")
    a = ap.parse_args()
    if a.isa == "avx2":
        os.environ.update(ORION_CPU="avx2", ATEN_CPU_CAPABILITY="avx2",
                          MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2")
    import torch
    torch.set_num_threads(a.threads)
    report = {"preset": a.preset, "batch": a.batch, "seq": a.seq, "threads": a.threads,
              "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}
    report["torch_f32_s"] = torch_steps(a.preset, a.batch, a.seq, a.steps, bf16=False)
    report["torch_bf16_autocast_s"] = torch_steps(a.preset, a.batch, a.seq, a.steps, bf16=True)
    for precision in ("f32", "bf16"):
        r = orion_step(a.preset, a.batch, a.seq, a.steps, precision, a.threads)
        report[f"orion_{precision}_s"] = r["step_seconds"]
        report["orion_cpu_level"] = r.get("cpu_level")
        report[f"orion_{precision}_breakdown_s"] = r["breakdown_seconds"]
    for o in ("f32", "bf16"):
        for t in ("torch_f32_s", "torch_bf16_autocast_s"):
            report[f"speedup_orion_{o}_vs_{t[:-2]}"] = report[t] / report[f"orion_{o}_s"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
