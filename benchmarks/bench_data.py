"""Data-pipeline benchmark (a script, not a test): token-cache build time and size for all local data, and
training batches per second from the cache vs from raw text tokenized batch by batch.

    cd /work/main && .venv/bin/python benchmarks/bench_data.py [--batch-size 128] [--epochs 2]

Prints a table and writes benchmarks/bench_data.json. Uses a fresh temporary cache, so the build is timed cold."""
import argparse, json, os, platform, shutil, tempfile, time
from pathlib import Path
import numpy as np
import torch
from fourier_nb.config import Config
from fourier_nb.data import STSB_SPLITS, data_dir, load_nli_pairs, load_tokenizer, pad_batch
from fourier_nb.cache import cache_size_mb, cached_nli, cached_stsb
from fourier_nb.batches import PairBatches

def timed(f):
    "Run `f()` and return (its result, seconds)."
    t0 = time.perf_counter(); r = f()
    return r, time.perf_counter() - t0

def batches_per_s(make_batch, steps: int, repeats: int = 3) -> float:
    "Batches per second of `make_batch(step)` over `steps` steps: best of `repeats`, after a warm-up pass."
    [make_batch(s) for s in range(steps)]                                     # page in the memory map, fill caches
    return max(steps / timed(lambda: [make_batch(s) for s in range(steps)])[1] for _ in range(repeats))

def main(batch_size: int = 128, epochs: int = 2, out: Path = Path(__file__).parent/'bench_data.json'):
    tmp = Path(tempfile.mkdtemp(prefix='fnb-bench-'))
    try:
        cfg = Config(nli_train='dev-mix', cache_dir=str(tmp), batch_size=batch_size)
        def build():
            nli = cached_nli(cfg)
            return nli, [cached_stsb(cfg, s) for s in STSB_SPLITS]
        (nli, sts), build_s = timed(build)
        _, load_s = timed(build)                                             # warm: memory-mapped loads only
        cache_mb, tok_mb = cache_size_mb(cfg), (tmp/'tokenizer.json').stat().st_size / 2**20
        hn, hn_build_s = timed(lambda: cached_nli(cfg.replace(hard_negatives=True)))
        pb = PairBatches(nli, batch_size, seed=0, bucket=True)
        flat = PairBatches(nli, batch_size, seed=0, bucket=False)
        steps = pb.steps_per_epoch * epochs
        pairs, tok = load_nli_pairs(cfg), load_tokenizer(cfg)
        text = {k: pairs[k].to_numpy() for k in ('anchor', 'positive')}
        def raw_batch(step):                                                  # the same batches, tokenized on the fly
            idx = pb.indices(step)
            return {k: pad_batch([np.array(e.ids, np.uint16) for e in tok.encode_batch(t[idx].tolist())]) for k, t in text.items()}
        assert all(torch.equal(raw_batch(s)[k][0], pb.batch(s)[k][0]) for s in (0, 1) for k in text)
        res = dict(
            data=cfg.train_data_name, data_dir=str(data_dir(cfg)), batch_size=batch_size, epochs=epochs, steps=steps,
            nli_pairs=len(nli['anchor']), nli_counts=pairs.attrs['counts'], hard_negative_triples=len(hn['anchor']),
            stsb_pairs={s: len(x[0]) for s, x in zip(STSB_SPLITS, sts)},
            tokens=int(sum(p.offsets[-1] for p in nli.values()) + sum(x[i].offsets[-1] for x in sts for i in (0, 1))),
            build_s=round(build_s, 3), warm_load_s=round(load_s, 4), hard_negatives_build_s=round(hn_build_s, 3),
            cache_mb=round(cache_mb, 3),                                      # MiB, dev-mix + STS-B; with the tokenizer.json copy
            cache_minus_tokenizer_mb=round(cache_mb - tok_mb, 3),
            cache_with_hard_negatives_mb=round(cache_size_mb(cfg), 3),
            batches_per_s_cache=round(batches_per_s(pb.batch, steps), 1),
            batches_per_s_cache_no_bucket=round(batches_per_s(flat.batch, steps), 1),
            batches_per_s_raw=round(batches_per_s(raw_batch, steps), 1),
            padding_fraction_bucket=round(pb.padding_fraction(steps), 4),
            padding_fraction_no_bucket=round(flat.padding_fraction(steps), 4),
            padding_fraction_max_len=round(1 - float(np.mean([p.lengths.mean() for p in nli.values()])) / cfg.max_len, 4),
            cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), python=platform.python_version(),
            torch=torch.__version__, machine=platform.machine())
        res['speedup_cache_vs_raw'] = round(res['batches_per_s_cache'] / res['batches_per_s_raw'], 1)
    finally: shutil.rmtree(tmp, ignore_errors=True)
    for k, v in res.items(): print(f'{k:32s} {v}')
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(f'wrote {out}')
    return res

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--epochs', type=int, default=2)
    a = ap.parse_args()
    main(a.batch_size, a.epochs)
