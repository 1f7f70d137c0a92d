"""GPU training benchmark for the eight Table-1 configs: the fast path vs a released-code-style loop, side by side.

For each config (trained on the offline dev-mix pairs; the timings do not depend on which NLI pairs are used):
steps/s, real tokens/s, model FLOPs utilisation, peak GPU memory, and the projected time for 122,700 steps. For 1/256
and 2/512 also the "released-style" loop in the same process: every sentence padded to 128, fp16 autocast with a
GradScaler, eager, no bucketing, host-side batches, unfused AdamW. Writes benchmarks/gpu_train.json.

    python benchmarks/gpu_train.py                       # on a GPU machine (needs only torch, numpy, tokenizers, safetensors)
    python benchmarks/gpu_train.py --device cpu --steps 3 --warmup 1 --only table1-fourier-L1-d256   # CPU smoke check
"""
import argparse, json, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fourier_nb.run import config_from_args          # noqa: E402
from fourier_nb.train import Trainer, lr_at           # noqa: E402
from fourier_nb.model import count_params             # noqa: E402

CONFIGS = [f'table1-{e}-L{L}-d{d}' for L in (1, 2) for d in (256, 512) for e in ('fourier', 'learned')]
PEAK_BF16 = {'H100': 989e12, 'H200': 989e12, 'A100': 312e12, 'RTX 4090': 165e12}   # dense bf16/fp16 FLOP/s

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def flops_per_step(cfg, batch) -> float:
    "Model FLOPs of one training step (forward + backward = 3x forward) from the padded batch shapes."
    d, L, total = cfg.d_model, cfg.n_layers, 0.0
    dense = L * 16 * d * d + 2 * d * d                      # weights used per token (attention, FFN, pooler, emb Linear)
    for ids, _ in batch.values():
        B, T = ids.shape
        total += 2 * B * T * dense + L * 4 * B * T * T * d     # matmuls + attention scores and values
    return 3 * total

def timed(tr, steps, warmup, fast=True):
    "Run warmup + steps optimiser steps; return (steps/s, real tokens/s, FLOP/s)."
    dev, tok, flops = tr.device, 0, 0.0
    scaler = None if fast else torch.amp.GradScaler(dev.type)
    for i in range(warmup + steps):
        if i == warmup: sync(dev); t0 = time.perf_counter()
        batch = tr.batches.batch(tr.step)
        if i >= warmup:
            tok += sum(int(m.sum()) for _, m in batch.values()) if not fast else 0
            flops += flops_per_step(tr.cfg, batch)
        if fast: tr.train_step(batch)
        else: released_step(tr, batch, scaler)
        tr.step += 1
    sync(dev)
    dt = time.perf_counter() - t0
    if fast: tok = sum(int(tr.batches.host._lens[:, tr.batches.host.indices(s)].sum())
                       for s in range(tr.step - steps, tr.step)) if hasattr(tr.batches, 'host') else 0
    return steps / dt, tok / dt, flops / dt

def released_step(tr, batch, scaler):
    "One step as the released code runs it: fp16 autocast, GradScaler, eager, inputs already padded to 128."
    dev = tr.device
    for g in tr.opt.param_groups: g['lr'] = lr_at(tr.step, tr.cfg)
    with torch.autocast(dev.type, dtype=torch.float16, enabled=dev.type == 'cuda'):
        vecs = [tr.model(ids.to(dev), m.to(dev)) for ids, m in batch.values()]
    loss = tr.loss_fn(*vecs)
    tr.opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(tr.opt); scaler.update()

def bench(name, a, style):
    fast = style == 'fast'
    ov = (f'nli_train=dev-mix,device={a.device},out_dir=/tmp/fnb-gpu-bench,run_name={name}-{style},'
          + (f'bf16=true,device_data=true,pad_multiple={a.pad_multiple},fused_adam=true,compile={a.compile}' if fast
             else 'bf16=false,device_data=false,bucket=false,fused_adam=false,compile=false'))
    cfg = config_from_args([ROOT/'configs'/f'{name}.yaml'], ov)
    tr = Trainer(cfg, progress=False)
    if not fast:
        from fourier_nb.fast import DeviceBatches
        tr.batches = DeviceBatches(tr.packs, cfg.batch_size, cfg.seed, False, 'cpu', pad_to=128)   # host, padded to 128
    if tr.device.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    sps, tps, fl = timed(tr, a.steps, a.warmup, fast)
    gpu = torch.cuda.get_device_name() if tr.device.type == 'cuda' else 'cpu'
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    return dict(config=name, style=style, params=count_params(tr.model), steps_per_s=round(sps, 1),
                real_tokens_per_s=round(tps), model_tflops=round(fl / 1e12, 2), mfu=round(fl / peak, 4) if peak else None,
                peak_mem_gb=round(torch.cuda.max_memory_allocated() / 2**30, 3) if tr.device.type == 'cuda' else None,
                projected_122700_s=round(122_700 / sps, 1), device=gpu, torch=torch.__version__,
                switches=dict(bf16=cfg.bf16, device_data=cfg.device_data, pad=cfg.pad_multiple if fast else 128,
                              fused_adam=cfg.fused_adam, compile=cfg.compile, bucket=cfg.bucket))

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--device', default='cuda'); ap.add_argument('--steps', type=int, default=300)
    ap.add_argument('--warmup', type=int, default=30); ap.add_argument('--pad-multiple', type=int, default=8)
    ap.add_argument('--compile', action='store_true'); ap.add_argument('--only', nargs='*', default=None)
    ap.add_argument('--out', default=str(ROOT/'benchmarks'/'gpu_train.json'))
    a = ap.parse_args()
    rows = []
    for name in a.only or CONFIGS:
        for style in ['fast'] + (['released'] if name.endswith(('L1-d256', 'L2-d512')) and 'fourier' in name else []):
            rows.append(bench(name, a, style)); print(json.dumps(rows[-1]), flush=True)
    ratios = {r['config']: round(r['steps_per_s'] / next(q['steps_per_s'] for q in rows if q['config'] == r['config']
              and q['style'] == 'released'), 2) for r in rows if r['style'] == 'fast'
              and any(q['config'] == r['config'] and q['style'] == 'released' for q in rows)}
    total = sum(r['projected_122700_s'] for r in rows if r['style'] == 'fast')
    out = dict(rows=rows, speedup_fast_vs_released=ratios, sequential_projection_all_fast_s=round(total, 1),
               paper_hours_all_eight=12.1, note='timed on dev-mix pairs (offline); projections, not full runs')
    Path(a.out).write_text(json.dumps(out, indent=1)); print(json.dumps(ratios), f'wrote {a.out}')

if __name__ == '__main__': main()
