"""How close does the kit's transformer come to the CPU's fp32 matmul ceiling when it encodes?

    cd /work/main && .venv/bin/python benchmarks/flops_ceiling.py --run runs/cpu-demo \\
        [--threads 2] [--batch-size 32] [--repeats 3] [--n 10000] [--out FILE]

One row, the kit transformer fp32 (measured as in _common.py), with its FLOP ceiling: forward FLOPs per token (2 per
multiply-add; per layer QKV and O 4d², the attention's 2·T·d, GeGLU up 8d² and down 4d²; the embedding is a gather of
precomputed vectors, so 0), the pooler's 2d² per sentence, and the machine's sustained fp32 torch.mm rate on the block's
shapes at 1 thread and at --threads: ceiling_sentences_per_s = GFLOP/s / FLOPs per sentence at the mean token count.
Also the kit's tokenizer alone on the same sentences (what is left besides the model). Needs nothing beyond the kit.
Writes benchmarks/flops_ceiling.json."""
import time
import numpy as np
import torch
import _common as C

def kit_flops(cfg, T: float) -> dict:
    "Forward FLOPs of a kit encoder for a sentence of T tokens: 2 per multiply-add, the embedding a table gather (0)."
    d = cfg.d_model
    per_token = cfg.n_layers * (2 * 4 * d * d + 2 * 2 * T * d + 2 * 12 * d * d)   # QKV+O, QKᵀ and A·V, GeGLU up + down
    pooler = 2 * d * d if cfg.pooler == 'tanh' else 0
    return dict(flops_per_token=round(per_token), flops_per_sentence=round(T * per_token + pooler))

def matmul_gflops(d: int, rows: int, threads: int, windows: int = 5, seconds: float = 0.5) -> float:
    "Sustained fp32 GFLOP/s of torch.mm at `threads`: (rows, ·) through one block's d->3d, d->d, d->8d, 4d->d; best window."
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    shapes = [(d, 3 * d), (d, d), (d, 8 * d), (4 * d, d)]                          # (in, out) of the block's Linears
    mats = [(torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g)) for k, n in shapes]   # W (out, in)
    flop = sum(2 * rows * k * n for k, n in shapes)
    step = lambda: [torch.mm(x, w.t()) for x, w in mats]
    for _ in range(5): step()
    best = 0.0
    for _ in range(windows):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds: step(); n += 1
        best = max(best, flop * n / (time.perf_counter() - t0) / 1e9)
    return round(best, 1)

def main(argv=None) -> dict:
    a = C.parser(__doc__, 'flops_ceiling.json').parse_args(argv)
    rep = C.Report(a, __doc__.split('\n')[0])
    run = C.kit_folder(a.run, '--run')
    texts, test = C.sentences(rep.cfg, a.n), C.stsb_test(rep.cfg)
    row, model = C.kit_row(run, texts, test, a)
    tok = model.tokenizer
    tokenize, tok_s = getattr(tok, 'encode_batch_fast', tok.encode_batch), []
    for _ in range(a.repeats):                                  # the kit's tokenizer alone
        t0 = time.perf_counter(); lens = [len(e.ids) for e in tokenize(texts)]; tok_s.append(time.perf_counter() - t0)
    T = float(np.mean(lens))                                    # tokens per sentence, [CLS] and [SEP] included
    gflops = {str(t): matmul_gflops(model.cfg.d_model, a.batch_size * round(T), t) for t in sorted({1, a.threads})}
    torch.set_num_threads(a.threads)
    fl = kit_flops(model.cfg, T)
    ceiling = gflops[str(a.threads)] * 1e9 / fl['flops_per_sentence']
    row |= dict(mean_tokens=round(T, 2), **fl, matmul_gflops=gflops, ceiling_sentences_per_s=round(ceiling, 1),
                ceiling_fraction=round(row['sentences_per_s'] / ceiling, 3))
    out = rep.write([row], kit_tokenizer_sentences_per_s=round(a.n / min(tok_s), 1))
    print(f"{row['model']}: {row['flops_per_sentence'] / 1e6:.1f} MFLOP per sentence at {row['mean_tokens']} tokens; "
          f"torch.mm {row['matmul_gflops']} GFLOP/s by threads -> ceiling {row['ceiling_sentences_per_s']:,.0f} "
          f"sentences/s, measured {row['sentences_per_s']:,.0f} ({100 * row['ceiling_fraction']:.0f}%); the tokenizer "
          f"alone {out['kit_tokenizer_sentences_per_s']:,.0f} sentences/s")
    return out

if __name__ == '__main__': main()
