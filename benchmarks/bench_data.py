"""Data-pipeline benchmark (a script, not a test): how long the token cache takes to build and how fast training batches
come from it, for the dev-mix (13,639 NLI entailment pairs) and for train_data='all' (the dev-mix and all ten pairs/
sources: about 611k pairs, 492k distinct sentences), in one run; and the same batches from raw text, tokenized batch by
batch, for comparison.

    cd /work/main && .venv/bin/python benchmarks/bench_data.py [--batch-size 128] [--epochs 2] [--threads 2] [--out FILE]

Each build is timed cold: the first `cached_pairs` call on a fresh temporary cache_dir (reading the Parquet files,
tokenizing each distinct sentence once, writing the folder). Batches/s: `PairBatches.batch` (length-bucketed, and not)
over the first --epochs epochs (at most --max-steps steps), best of 3 passes after a warm-up pass that pages the
memory-mapped cache in; raw text over the first --raw-steps of those steps. The dev-mix row also keeps the numbers of
the earlier version of this script (hard-negative triples, STS-B, their build times). Writes benchmarks/bench_data.json:
one row per training set, each with its Config, the threads, the machine and the CPU other processes took meanwhile."""
import argparse, json, os, platform, shutil, sys, tempfile, time
from pathlib import Path
import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from _common import cpu_clock, cpu_name, other_cpu, set_threads     # noqa: E402
from fourier_nb.config import Config                               # noqa: E402
from fourier_nb.data import STSB_SPLITS, Packed, data_dir, load_tokenizer   # noqa: E402
from fourier_nb.pairs import PAIR_FILES, load_train_pairs, nli_pairs, train_data_name   # noqa: E402
from fourier_nb.cache import cache_size_mb, cached_pairs, cached_stsb   # noqa: E402
from fourier_nb.batches import PairBatches                         # noqa: E402

def timed(f):
    "Run `f()` and return (its result, seconds)."
    t0 = time.perf_counter(); r = f()
    return r, time.perf_counter() - t0

def batches_per_s(make_batch, steps: int, repeats: int = 3) -> float:
    "Batches per second of `make_batch(step)` over `steps` steps: best of `repeats`, after a warm-up pass."
    [make_batch(s) for s in range(steps)]                                     # page in the memory map, fill caches
    return max(steps / timed(lambda: [make_batch(s) for s in range(steps)])[1] for _ in range(repeats))

def row(cfg: Config, a, progress: bool) -> tuple:
    "One training set: its cold cache build, warm load, size, batches/s from the cache and from raw text; (row, data)."
    clock, load0 = cpu_clock(), os.getloadavg()[0]
    data, build_s = timed(lambda: cached_pairs(cfg, progress=progress))
    _, load_s = timed(lambda: cached_pairs(cfg))                             # warm: memory-mapped loads only
    pb, flat = (PairBatches(data.packs, a.batch_size, seed=0, bucket=b) for b in (True, False))
    steps = min(pb.steps_per_epoch * a.epochs, a.max_steps)
    raw_steps = min(steps, a.raw_steps)
    pairs, tok = load_train_pairs(cfg), load_tokenizer(cfg)
    text = {k: pairs[k].to_numpy() for k in data.packs}
    def raw_batch(step):                                                      # the same batches, tokenized on the fly
        idx = pb.indices(step)
        return {k: Packed.from_texts(tok, t[idx].tolist()).batch(np.arange(len(idx))) for k, t in text.items()}
    assert all(torch.equal(raw_batch(s)[k][0], pb.batch(s).parts[k][0]) for s in (0, 1) for k in text)
    files = ({f: pq_rows(data_dir(cfg)/'pairs'/f'{f}.parquet') for f in PAIR_FILES.values()}   # 'pairs': per file
             if 'pairs' in pairs.attrs['counts'] else {})
    r = dict(train_data=cfg.train_data, data=train_data_name(cfg.train_data), pairs=len(data),
             distinct_sentences=data.meta['distinct_sentences'], source_counts=pairs.attrs['counts'] | files,
             tokens=int(sum(p.offsets[-1] for p in data.packs.values())), batch_size=a.batch_size,
             steps_per_epoch=pb.steps_per_epoch, steps=steps, raw_steps=raw_steps,
             build_s=round(build_s, 3), build_s_in_meta=data.meta['build_s'], warm_load_s=round(load_s, 4),
             cache_mb=round(data.meta['size_mb'], 3),                         # MiB of its cache folder
             batches_per_s_cache=round(batches_per_s(pb.batch, steps), 1),
             batches_per_s_cache_no_bucket=round(batches_per_s(flat.batch, steps), 1),
             batches_per_s_raw=round(batches_per_s(raw_batch, raw_steps), 1),
             padding_fraction_bucket=round(pb.padding_fraction(steps), 4),
             padding_fraction_no_bucket=round(flat.padding_fraction(steps), 4),
             padding_fraction_max_len=round(1 - float(np.mean([p.lengths.mean() for p in data.packs.values()]))
                                            / cfg.max_len, 4))
    r['speedup_cache_vs_raw'] = round(r['batches_per_s_cache'] / r['batches_per_s_raw'], 1)
    return r | context(a) | dict(load_avg_1min=[round(load0, 2), round(os.getloadavg()[0], 2)],
                                 contention=other_cpu(clock), config=cfg.to_dict()), data

def pq_rows(path) -> int:
    import pyarrow.parquet as pq
    return pq.read_metadata(path).num_rows

def context(a) -> dict:
    "Threads and machine, recorded in every row."
    return dict(threads=a.threads, torch_threads=torch.get_num_threads(),
                rayon_threads=os.environ.get('RAYON_NUM_THREADS'), machine=cpu_name(), arch=platform.machine(),
                cpu_count=os.cpu_count(), python=platform.python_version(), torch=torch.__version__)

def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--epochs', type=int, default=2, help='epochs of batches timed (at most --max-steps steps)')
    ap.add_argument('--max-steps', type=int, default=2000)
    ap.add_argument('--raw-steps', type=int, default=212, help='steps timed from raw text (slow)')
    ap.add_argument('--threads', type=int, default=2, help='torch threads and the tokenizers\' Rayon pool')
    ap.add_argument('--sets', default='dev-mix,all', help='train_data of each row, comma-separated')
    ap.add_argument('--no-progress', action='store_true', help="no progress bar for the large builds")
    ap.add_argument('--out', default=str(Path(__file__).parent/'bench_data.json'))
    a = ap.parse_args(argv)
    set_threads(a.threads)                                                  # before anything tokenizes
    tmp, rows = Path(tempfile.mkdtemp(prefix='fnb-bench-')), []
    try:
        for spec in a.sets.split(','):
            cfg = Config(train_data=spec, cache_dir=str(tmp/spec), batch_size=a.batch_size)   # every build cold
            r, data = row(cfg, a, progress=not a.no_progress and spec != 'dev-mix')
            if spec == 'dev-mix':                                           # the earlier script's numbers
                sts, stsb_s = timed(lambda: [cached_stsb(cfg, s) for s in STSB_SPLITS])
                tok_mb = (tmp/spec/'tokenizer.json').stat().st_size / 2**20
                mb = cache_size_mb(cfg)
                r |= dict(nli_counts=nli_pairs(cfg, 'dev-mix').attrs['counts'],
                          stsb_pairs={s: len(x[0]) for s, x in zip(STSB_SPLITS, sts)}, stsb_build_s=round(stsb_s, 3),
                          build_with_stsb_s=round(r['build_s'] + stsb_s, 3), cache_with_stsb_mb=round(mb, 3),
                          cache_with_stsb_minus_tokenizer_mb=round(mb - tok_mb, 3))
                hn, hn_s = timed(lambda: cached_pairs(cfg.replace(hard_negatives=True)))
                r |= dict(hard_negative_triples=len(hn), hard_negatives_build_s=round(hn_s, 3),
                          cache_with_hard_negatives_mb=round(cache_size_mb(cfg), 3))
            rows.append(dict(name=spec) | r)
            print(json.dumps({k: v for k, v in rows[-1].items() if k != 'config'}), flush=True)
            del data
    finally: shutil.rmtree(tmp, ignore_errors=True)
    out = dict(benchmark='token cache build and training batches per second, by training set',
               data_dir=str(data_dir(Config())), rows=rows)
    by = {r['name']: r for r in rows}
    if {'dev-mix', 'all'} <= set(by):
        d, x = by['dev-mix'], by['all']
        out['all_vs_dev_mix'] = {k: round(x[k] / d[k], 2) for k in ('pairs', 'distinct_sentences', 'tokens', 'build_s',
                                                                    'cache_mb', 'batches_per_s_cache', 'batches_per_s_raw')}
    Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
    keys = ('pairs', 'distinct_sentences', 'build_s', 'warm_load_s', 'cache_mb', 'batches_per_s_cache',
            'batches_per_s_cache_no_bucket', 'batches_per_s_raw', 'padding_fraction_bucket', 'steps')
    print(f"\n{'':30}" + ''.join(f"{r['name']:>14}" for r in rows))
    for k in keys: print(f"{k:30}" + ''.join(f"{r[k]:>14,}" for r in rows))
    print(f"{a.threads} thread(s), {cpu_name()}; other processes' share of the cores: "
          + ', '.join(f"{r['name']} {r['contention']['other_processes_cpu_share']:.0%}" for r in rows))
    print(f'wrote {a.out}')
    return out

if __name__ == '__main__': main()
