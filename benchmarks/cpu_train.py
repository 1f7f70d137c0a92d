"""CPU training benchmark: the Fourier and the learned-table encoder (1 layer, d=256) for the same wall-clock budget.

Each variant trains in its own process (so peak RSS is its own) on the offline dev-mix pairs, then is scored on STS-B
dev and the seven STS test sets and kept as runs/cpu-bench-{fourier,learned}/ (the analysis notebooks read them;
--out-dir puts them elsewhere). A third, short entry times the Fourier basis computed per batch instead of read from a (V, d) buffer.

    python benchmarks/cpu_train.py [--budget 180] [--threads 2] [--out-dir runs]   # writes benchmarks/cpu_train.json
"""
import argparse, json, platform, resource, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMON = dict(train_data='dev-mix', n_layers=1, n_heads=1, d_model=256, batch_size=128, lr=1e-3, warmup_steps=50,
              max_steps=20_000, log_every=10, device='cpu', out_dir='runs')

def child(spec: dict) -> dict:
    "Train one variant for spec['budget'] seconds and score it (runs in a fresh process)."
    import torch
    from fourier_nb.config import Config
    from fourier_nb.train import Trainer
    from fourier_nb.evaluate import sts_scores
    from fourier_nb.model import count_params
    torch.set_num_threads(spec['threads'])
    cfg = Config.from_dict(COMMON | spec['cfg'] | dict(time_limit_s=spec['budget'], out_dir=spec['out_dir'],
                                                         cache_dir=spec['cache_dir']))
    tr = Trainer(cfg, progress=False)
    tr.fit()
    out = dict(variant=spec['name'], params=count_params(tr.model), steps=tr.step, train_time_s=round(tr.train_time, 1),
               steps_per_s=round(tr.step / tr.train_time, 2),
               pairs_per_s=round(tr.step * cfg.batch_size / tr.train_time, 1),
               loss_final=next(h['loss'] for h in reversed(tr.history) if 'loss' in h))
    if spec.get('score', True):
        out |= sts_scores(tr.model, cfg)                     # STS-B dev and the seven test sets, as a run's metrics
        from fourier_nb.checkpoint import save_model        # kept as runs/cpu-bench-*/ for the analysis notebooks
        from fourier_nb.data import load_tokenizer
        from fourier_nb.files import write_json
        from fourier_nb.pairs import train_data_name
        save_model(tr.dir, cfg, tr.model, load_tokenizer(cfg))
        write_json(tr.dir/'metrics.json', cfg.to_dict() | out | dict(train_data_name=train_data_name(cfg.train_data),
                   status='done', embedding_params=count_params(tr.model.embed), train_time_s=out['train_time_s']))
    out['peak_rss_mb'] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--budget', type=float, default=180, help='training seconds per variant')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'cpu_train.json'))
    ap.add_argument('--out-dir', default='runs', help="the runs' folder (relative to the repo root, or absolute)")
    ap.add_argument('--cache-dir', default='', help="the token cache ('': the repo's .cache/tokens)")
    a = ap.parse_args()
    specs = [dict(name='fourier', cfg=dict(embedding='fourier', run_name='cpu-bench-fourier')),
             dict(name='learned', cfg=dict(embedding='learned', run_name='cpu-bench-learned')),
             dict(name='fourier, basis computed per batch', score=False, budget=min(30, a.budget),
                  cfg=dict(embedding='fourier', basis_cache=False, run_name='cpu-bench-fourier-onthefly'))]
    import shutil
    for s in specs: shutil.rmtree(ROOT/a.out_dir/s['cfg']['run_name'], ignore_errors=True)   # a fresh run each time
    results = []
    for s in specs:
        s = dict(budget=a.budget, threads=a.threads, out_dir=a.out_dir, cache_dir=a.cache_dir) | s
        t0 = time.time()
        r = subprocess.run([sys.executable, __file__, '--child', json.dumps(s)], capture_output=True, text=True, cwd=ROOT)
        if r.returncode: sys.exit(f"{s['name']} failed:\n{r.stderr[-3000:]}")
        res = json.loads(r.stdout.strip().splitlines()[-1]) | dict(wall_s=round(time.time() - t0, 1))
        results.append(res)
        print(json.dumps(res))
    f, l = results[0], results[1]
    summary = dict(budget_s=a.budget, threads=a.threads, machine=platform.processor() or platform.machine(),
                   train_data='dev-mix (SNLI val+test, MNLI val m+mm; entailment)', hyper=COMMON,
                   fourier_vs_learned_steps_per_s=round(f['steps_per_s'] / l['steps_per_s'], 3),
                   basis_cache_speedup=round(f['steps_per_s'] / results[2]['steps_per_s'], 3), results=results)
    Path(a.out).write_text(json.dumps(summary, indent=1))
    print(f"\n{'variant':36}{'params':>11}{'steps/s':>9}{'steps':>7}{'RSS MB':>8}{'dev':>7}{'test':>7}")
    for r in results:
        print(f"{r['variant']:36}{r['params']:>11,}{r['steps_per_s']:>9.2f}{r['steps']:>7}{r['peak_rss_mb']:>8.0f}"
              f"{r.get('stsb-dev_spearman', float('nan')):>7.2f}{r.get('stsb-test_spearman', float('nan')):>7.2f}")
    print(f"wrote {a.out}")

if __name__ == '__main__':
    if len(sys.argv) > 2 and sys.argv[1] == '--child': print(json.dumps(child(json.loads(sys.argv[2]))))
    else: main()
