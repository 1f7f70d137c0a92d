"""CPU throughput of stacked training: M same-shaped runs in one vmapped step (benchmarks/stack.py) vs M single Trainers.

For each model size (the grid's 1-layer d=128 encoder, and the depth-0 bag) and two kinds of stack (M runs that
differ in seed; M runs at one seed that differ in lr), the runs are built twice, as M `Trainer`s and as one `Stack`.
After a few untimed warm-up steps, S optimiser steps are timed on the offline dev-mix pairs, with the same number of
torch threads, interleaved (step s of each single run in turn, then step s of the stack) so that a busy machine slows
both alike. speedup = (time of the M single runs) / (time of the stack) for the same S steps of every member; CPU
time is recorded too. Runs with different seeds draw batches of different lengths and a stack computes every member
at the longest, so `pad_ratio` (mean longest length / mean own length) is recorded; runs at one seed share the data
order and pad nothing.

    python benchmarks/stack_cpu.py [--steps 40] [--members 3] [--threads 1]      # writes benchmarks/stack_cpu.json
"""
import argparse, json, os, platform, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT/'benchmarks')]
SIZES = [dict(name='L1 d128', n_layers=1, n_heads=1), dict(name='bag d128 (n_layers=0)', n_layers=0, n_heads=1)]
VARIANTS = ('seeds', 'lr grid, one seed')
COMMON = dict(train_data='dev-mix', embedding='fourier', d_model=128, batch_size=64, lr=1e-3, warmup_steps=10,
              max_steps=100_000, device='cpu')

def clock() -> tuple:
    "(wall, process CPU) seconds now."
    return time.perf_counter(), time.process_time()

def bench(size: dict, variant: str, members: int, steps: int, warmup: int, threads: int, out_dir: str,
          cache_dir: str = '') -> dict:
    "One row: S steps of M single Trainers in turn vs of one Stack of the same M runs."
    import torch
    from fourier_nb.config import Config
    from fourier_nb.train import Trainer
    from stack import Stack                                          # benchmarks/stack.py
    torch.set_num_threads(threads)
    spec = {k: v for k, v in size.items() if k != 'name'}
    vary = (lambda i: dict(seed=i)) if variant == 'seeds' else (lambda i: dict(lr=COMMON['lr'] * 2 ** i))
    cfgs = [Config.from_dict(COMMON | spec | vary(i) | dict(run_name=f"bench-{size['name'].split()[0]}-{i}",
                                                             out_dir=out_dir, cache_dir=cache_dir)) for i in range(members)]
    singles, st = [Trainer(c, progress=False) for c in cfgs], Stack(cfgs, progress=False)
    for tr in singles: tr.start(tr.phases[0])
    single, stack = [0.0, 0.0], [0.0, 0.0]                          # (wall, CPU) seconds
    for s in range(warmup + steps):                                 # interleaved: a busy machine slows both alike
        t0 = clock()
        for tr in singles:
            ph = tr.phases[0]; tr.step = s
            tr.set_lr(ph, s); tr.step_body(ph, tr.batch(ph, s))
        t1 = clock()
        st.step = s; st.train_step(st.batch(s))
        t2 = clock()
        if s >= warmup:
            for acc, a, b in ((single, t0, t1), (stack, t1, t2)): acc[0] += b[0] - a[0]; acc[1] += b[1] - a[1]
    (single_s, single_cpu), (stack_s, stack_cpu) = single, stack
    bs = [tr.phases[0].batches for tr in st.members]
    lens = torch.tensor([[b.lengths(b.indices(s))[0] for b in bs]
                         for s in range(warmup, warmup + steps)], dtype=torch.float64)   # (S, M) anchor lengths
    c0 = cfgs[0]
    return dict(model=dict(name=size['name'], embedding=c0.embedding, n_layers=c0.n_layers, d_model=c0.d_model,
                           n_heads=c0.n_heads, batch_size=c0.batch_size, train_data=c0.train_data),
                variant=variant, members=members, threads=threads, steps=steps, warmup_steps=warmup,
                machine=platform.processor() or platform.machine(), cpu_count=os.cpu_count(), torch=torch.__version__,
                single_steps_per_s=round(steps * members / single_s, 2),           # one run alone, mean over the M
                stack_steps_per_s=round(steps / stack_s, 2),                        # every member advances one step
                member_steps_per_s=dict(sequential=round(steps * members / single_s, 2),
                                        stacked=round(steps * members / stack_s, 2)),
                time_s=dict(sequential=round(single_s, 2), stacked=round(stack_s, 2)),
                cpu_time_s=dict(sequential=round(single_cpu, 2), stacked=round(stack_cpu, 2)),
                pad_ratio=round(float(lens.max(1).values.mean() / lens.mean()), 3),
                speedup=round(single_s / stack_s, 3), speedup_cpu_time=round(single_cpu / stack_cpu, 3))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--steps', type=int, default=40, help='timed steps per run (and of the stack)')
    ap.add_argument('--warmup', type=int, default=5, help='untimed steps first')
    ap.add_argument('--members', type=int, default=3)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'stack_cpu.json'))
    ap.add_argument('--cache-dir', default='', help="the token cache ('': the repo's .cache/tokens)")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:                  # nothing lands in runs/
        for size in SIZES:
            for variant in VARIANTS:
                rows.append(bench(size, variant, a.members, a.steps, a.warmup, a.threads, out_dir, a.cache_dir))
                print(json.dumps(rows[-1]), flush=True)
    Path(a.out).write_text(json.dumps(dict(benchmark='stacked vs sequential training on CPU', hyper=COMMON, rows=rows),
                                      indent=1))
    print(f"\n{'model':24}{'stack of':>20}{'M':>3}{'threads':>8}{'single steps/s':>16}{'stack steps/s':>15}"
          f"{'pad ratio':>10}{'speed-up':>10}{'(CPU time)':>11}")
    for r in rows:
        print(f"{r['model']['name']:24}{r['variant']:>20}{r['members']:>3}{r['threads']:>8}"
              f"{r['single_steps_per_s']:>16.2f}"
              f"{r['stack_steps_per_s']:>15.2f}{r['pad_ratio']:>10.2f}{r['speedup']:>10.2f}{r['speedup_cpu_time']:>11.2f}")
    print(f"wrote {a.out}")

if __name__ == '__main__': main()
