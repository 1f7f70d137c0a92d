"""GPU training benchmark for the eight Table-1 configs: the released-code-style loop vs the fast path, side by side.

For each config (trained on the offline dev-mix pairs; step times do not depend on which NLI pairs
are used), steps/s, real tokens/s, model FLOPs utilisation, peak GPU memory and the projected time for 122,700
steps, for each style in the same process:
  released  every sentence padded to 128, fp16 autocast with a GradScaler, eager, no bucketing, host-side batches,
            unfused AdamW (the released code's loop; 1/256 and 2/512 Fourier only)
  eager     the fast path without graphs: bf16, device-resident bucketed batches padded to a multiple of 8, fused AdamW
  fused     eager + fuse_pairs (anchors and positives in one forward call)
  graphs    fused + cuda_graphs (the whole step replayed as one CUDA graph per padded length)
  graphs-basis-per-batch   graphs with the Fourier basis computed per batch instead of held as a (V, d) table
A `check` row trains one small model 40 steps eager and 40 steps graphed from the same start (fp32) and reports the
largest difference between the two loss curves.

Running the eight side by side in one process (one CUDA stream and graph set per model) was tried on an H200 and
hung; it is not part of this script. `benchmarks/table1_all.sh` runs them as eight processes instead.

    python benchmarks/gpu_train.py                                   # GPU: writes benchmarks/gpu_train.json
    python benchmarks/gpu_train.py --device cpu --steps 3 --warmup 1 --only table1-fourier-L1-d256   # CPU check
"""
import argparse, json, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fourier_nb.cli import config_from_args                    # noqa: E402
from fourier_nb.train import Trainer                           # noqa: E402
from fourier_nb.batches import PairBatches                     # noqa: E402
from fourier_nb.model import count_params                      # noqa: E402

CONFIGS = [f'table1-{e}-L{L}-d{d}' for L in (1, 2) for d in (256, 512) for e in ('fourier', 'learned')]
ABLATED = ('table1-fourier-L1-d256', 'table1-fourier-L2-d512')                  # every style, side by side
PEAK_BF16 = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'RTX 4090': 165e12}   # dense bf16/fp16 FLOP/s
FAST = 'bf16=true,device_data=true,fused_adam=true,compile=false,bucket=true'
STYLES = {'released': 'bf16=false,device_data=false,bucket=false,fused_adam=false,compile=false',
          'eager': FAST, 'fused': FAST + ',fuse_pairs=true', 'graphs': FAST + ',fuse_pairs=true,cuda_graphs=true',
          'graphs-basis-per-batch': FAST + ',fuse_pairs=true,cuda_graphs=true,basis_cache=false'}

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def flops_per_step(cfg, B: int, lengths: list) -> float:
    "Model FLOPs of one training step (forward + backward = 3x forward) for B pairs padded to `lengths` per part."
    d, L = cfg.d_model, cfg.n_layers
    dense = L * 16 * d * d + 2 * d * d                      # weights used per token (attention, FFN, pooler, emb Linear)
    return 3 * sum(2 * B * T * dense + L * 4 * B * T * T * d for T in lengths)   # matmuls + attention scores/values

def trainer(name, style, a, run_name=None, extra=''):
    ov = (f"train_data=dev-mix,device={a.device},out_dir={a.runs},run_name={run_name or f'{name}-{style}'},"
          f"pad_multiple={a.pad_multiple},{STYLES[style]}{extra}")
    if a.device == 'cpu': ov = ov.replace('cuda_graphs=true', 'cuda_graphs=false')   # the CPU check skips graphs
    tr = Trainer(config_from_args([ROOT/'configs'/f'{name}.yaml'], ov), progress=False)
    ph = tr.phases[0]
    if style == 'released':                                  # host batches, every sentence padded to 128
        ph.batches = PairBatches(tr.data.packs, tr.cfg.batch_size, tr.cfg.seed, bucket=False, device='cpu',
                                 pad_multiple=tr.cfg.max_len)
    tr.start(ph)                                             # its AdamW (and, with cuda_graphs, its GraphedStep)
    return tr

def released_step(tr, batch, scaler):
    "One step as the released code runs it: fp16 autocast, GradScaler, eager, inputs already padded to 128."
    dev, ph = tr.device, tr.phases[0]
    tr.set_lr(ph, tr.step)
    with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == 'cuda'):
        vecs = {k: tr.model(ids.to(dev), m.to(dev)) for k, (ids, m) in batch.parts.items()}
    rows = batch.rows.to(dev)
    loss = tr.objective(vecs, ph.terms, groups=ph.rows['groups'][rows] if 'groups' in ph.rows else None)
    tr.opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(tr.opt); scaler.update()

def one_step(tr, style, scaler=None):
    ph = tr.phases[0]
    if style == 'released': released_step(tr, ph.batches.batch(tr.step), scaler)
    else: tr.one_step(ph)                                    # the lr, then a graph replay or the eager step
    tr.step += 1

def timed(tr, style, steps, warmup):
    "warmup + steps optimiser steps (graphs are captured during the warm-up); (steps/s, real tokens/s, FLOP/s)."
    dev, scaler = tr.device, torch.amp.GradScaler(tr.device.type) if style == 'released' else None
    for _ in range(warmup): one_step(tr, style, scaler)
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    sync(dev); t0 = time.perf_counter()
    for _ in range(steps): one_step(tr, style, scaler)
    sync(dev); dt = time.perf_counter() - t0
    tok = flops = 0                                         # counted afterwards from the host-side lengths
    b = tr.phases[0].batches
    for s in range(tr.step - steps, tr.step):
        idx = b.indices(s)
        tok += int(b._lens[:, idx].sum())
        flops += flops_per_step(tr.cfg, len(idx), b.lengths(idx, joint=tr.cfg.fuse_pairs))
    return steps / dt, tok / dt, flops / dt

def gpu_name(dev): return torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'

def bench_one(name, style, a) -> dict:
    tr = trainer(name, style, a)
    sps, tps, fl = timed(tr, style, a.steps, a.warmup)
    gpu = gpu_name(tr.device)
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    c = tr.cfg
    row = dict(config=name, style=style, params=count_params(tr.model), steps_per_s=round(sps, 1),
               real_tokens_per_s=round(tps), model_tflops=round(fl / 1e12, 2), mfu=round(fl / peak, 4) if peak else None,
               peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 3) if tr.device.type == 'cuda' else None,
               projected_122700_s=round(122_700 / sps, 1), device=gpu, torch=torch.__version__,
               switches=dict(bf16=c.bf16, device_data=c.device_data, pad=128 if style == 'released' else c.pad_multiple,
                             fused_adam=c.fused_adam, fuse_pairs=c.fuse_pairs, cuda_graphs=c.cuda_graphs,
                             basis_cache=c.basis_cache, bucket=c.bucket))
    del tr
    if torch.cuda.is_available(): torch.cuda.empty_cache()
    return row

def check_graphs(a) -> dict:
    "Same start, 40 steps eager vs 40 steps graphed (fp32, no dropout): the largest gap between the loss curves."
    curves = {}
    for g in (False, True):
        ov = (f'train_data=dev-mix,device=cuda,out_dir={a.runs},run_name=check-graphs{g},d_model=64,batch_size=32,lr=1e-3,'
              f'warmup_steps=5,max_steps=40,log_every=1,bf16=false,device_data=true,fuse_pairs=true,cuda_graphs={g}')
        tr = Trainer(config_from_args([], ov), progress=False); tr.fit()
        curves[g] = [h['loss'] for h in tr.history if 'loss' in h]
    return dict(check='graphs vs eager, 40 steps, fp32', max_abs_loss_diff=max(abs(x - y) for x, y in zip(*curves.values())),
                loss_eager_last=curves[False][-1], loss_graphs_last=curves[True][-1])

def bench(a):
    rows = []
    if a.device == 'cuda':
        try: rows.append(check_graphs(a))
        except Exception as e: rows.append(dict(check='graphs vs eager', error=f'{type(e).__name__}: {e}'))
        print(json.dumps(rows[-1]), flush=True)
    for name in a.only or CONFIGS:
        styles = (['released', 'eager', 'fused', 'graphs'] + (['graphs-basis-per-batch'] if 'fourier' in name else [])
                  if name in ABLATED else ['fused', 'graphs'])
        for style in styles:
            if a.device == 'cpu' and 'graphs' in style: continue
            try: rows.append(bench_one(name, style, a))
            except Exception as e: rows.append(dict(config=name, style=style, error=f'{type(e).__name__}: {e}'))
            print(json.dumps(rows[-1]), flush=True)
            summarise(rows, a.out)                                  # after every row: a killed run keeps its rows
    print(json.dumps(summarise(rows, a.out)['speedup_vs_released']), f'\nwrote {a.out}')

def summarise(rows, path) -> dict:
    "Ratios to the released-style loop, the best style per config and the sequential projection; written to `path`."
    sps = {(r['config'], r['style']): r['steps_per_s'] for r in rows if 'steps_per_s' in r}
    ratios = {f'{c} {s} / released': round(v / sps[c, 'released'], 2) for (c, s), v in sps.items()
              if s != 'released' and (c, 'released') in sps}
    best = {c: max((v, s) for (c2, s), v in sps.items() if c2 == c) for c in {c for c, _ in sps}}
    out = dict(rows=rows, speedup_vs_released=ratios,
               sequential_projection_all_eight_best_s=round(sum(122_700 / v for v, _ in best.values()), 1)
               if len(best) == len(CONFIGS) else None, best_style={c: s for c, (v, s) in best.items()},
               paper_hours_all_eight=12.1, note='timed on dev-mix pairs (offline); single-process projections, not full runs')
    Path(path).write_text(json.dumps(out, indent=1))
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cuda'); ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--warmup', type=int, default=30); ap.add_argument('--pad-multiple', type=int, default=8)
    ap.add_argument('--only', nargs='*', default=None); ap.add_argument('--runs', default='/tmp/fnb-gpu-bench')
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'gpu_train.json'))
    bench(ap.parse_args())

if __name__ == '__main__': main()
