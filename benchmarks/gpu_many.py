"""The eight Table-1 configs on one GPU at once: which way of running several models concurrently is fastest.

Each mode trains the configs (dev-mix, device='cuda', gpu_train.py's best row 'graphs') for --seconds after --warmup
steps per model (graphs are captured there): sequential, one at a time; processes, a child process per config, all at
once; stacks, a benchmarks/stack.py Stack per group check_stackable accepts, in turn; streams, eight Trainers in a process,
each with its own graph pool, capture stream (so cuBLAS workspace) and replay stream, all captured before any replay, a
step of each issued per round from one thread; mps, processes under the CUDA MPS daemon. --check: two models alone, then
together on streams, from one start. Aggregate model-steps/s: models / sum(1 / rate) in turn, all steps / wall at once,
the processes' rates summed. MFU: gpu_train.py's flops_per_step (matmuls, attention, x3 for the backward) over the steps'
padded lengths / the dense bf16 peak. --full: the configs x 122,700 steps with --mode (default: the fastest measured).
Every mode runs in child processes under a hard timeout and a faulthandler stack dump: a hang costs that mode only.
    python benchmarks/gpu_many.py --check --full --total-s 500   # GPU: $OUT/gpu_many.json, else benchmarks/gpu_many.json
    python benchmarks/gpu_many.py --dry-run                      # CPU: every mode's plan, with tiny stand-in shapes
"""
import argparse, contextlib, faulthandler, gc, itertools, json, os, shlex, shutil, subprocess, sys, tempfile, time
from pathlib import Path
from unittest import mock
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT/'benchmarks')]
from gpu_train import CONFIGS, PEAK_BF16, STYLES, flops_per_step   # noqa: E402  the single-model benchmark's terms
from fourier_nb.cli import config_from_args                          # noqa: E402
from fourier_nb.run import train_and_eval                            # noqa: E402
from fourier_nb.train import Trainer                                 # noqa: E402
from stack import Stack, check_stackable                             # noqa: E402  benchmarks/stack.py
from fourier_nb import fast                                          # noqa: E402

MODES, STEPS, GPU = ('sequential', 'processes', 'stacks', 'streams', 'mps'), 122_700, torch.cuda.is_available()
NO_CUDA = ("gpu_many.py needs a CUDA GPU (torch.cuda.is_available() is False); run it on the device machine: bash "
           "benchmarks/gpu_session2.sh (carry .cache/tokens); `python benchmarks/gpu_many.py --dry-run` plans on a CPU")
STAND_IN = {256: 32, 512: 64}                    # --dry-run: the d_model of each shape's tiny stand-in

class StreamStep(fast.GraphedStep):
    "A Trainer's GraphedStep with its own stream, graph pool and capture stream, captured and replayed on `stream`."
    def __init__(self, tr, phase, stream, pool, capture):
        super().__init__(tr, phase); self.stream, self.pool, self.capture = stream, pool, capture
    def build(self):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream), mock.patch.object(torch.cuda, 'graph_pool_handle', lambda: self.pool), \
                mock.patch.object(torch.cuda.graph, 'default_capture_stream', self.capture):
            super().build()
    def __call__(self, phase, step: int):
        with torch.cuda.stream(self.stream): return super().__call__(phase, step)

def stream_plan(names, stream=None, capture=None, pool=None) -> list:
    "Each model's own stream, capture stream and graph pool (labels by default); refused if any two are shared."
    n = itertools.count(); mk = [f or (lambda k=k: f'{k}-{next(n)}') for f, k in ((stream, 'stream'), (capture, 'capture'), (pool, 'pool'))]
    plan = [dict(model=m, stream=mk[0](), capture=mk[1](), pool=mk[2]()) for m in names]
    for ks in (('stream', 'capture'), ('pool',)):
        used = [getattr(p[k], 'cuda_stream', p[k]) for p in plan for k in ks]      # torch streams by raw handle
        if len(set(used)) < len(used): raise RuntimeError(f"stream plan: two models share a {'/'.join(ks)}: {used}")
    return plan
def configs(a, mode, full=False, names=None, extra='') -> list:
    "The Configs of `names` (default --only): dev-mix, the fast path, device cuda (--dry-run: tiny CPU stand-ins)."
    ov = lambda n: (f"train_data=dev-mix,run_name={n}-devmix,out_dir={Path(a.runs)/mode},pad_multiple=8,{STYLES['graphs']},"
                    + (a.full_overrides if full else 'eval_every=0,ckpt_every=0') + extra + (',device=cuda' if not a.dry_run else
                    f",device=cpu,cuda_graphs=false,d_model={STAND_IN[int(n.rsplit('d', 1)[1])]}"))
    last = lambda s: ','.join(f'{k}={v}' for k, v in dict(x.split('=', 1) for x in s.split(',') if x).items())   # later wins
    return [config_from_args([ROOT/'configs'/f'{n}.yaml'], last(ov(n))) for n in names or a.only]

def stack_groups(cfgs) -> tuple:
    "One stack per shape (fourier and learned together) if check_stackable allows it, else one per config; (groups, why)."
    groups, why = [], None
    for shape in dict.fromkeys((c.n_layers, c.d_model) for c in cfgs):
        cs = [c for c in cfgs if (c.n_layers, c.d_model) == shape]
        try: groups.append(check_stackable(cs))
        except ValueError as e: why = why or str(e); groups += [[c] for c in cs]
    return groups, why

def jobs(a, mode, deadline=0.0) -> list:
    "The child processes of a mode, [(worker mode, extra args)]: processes and mps run one per config at once."
    if mode not in ('processes', 'mps'): return [(mode, ['--deadline', str(deadline)] if mode.startswith('full-') else [])]
    return [('full-sequential' if deadline else 'sequential', ['--only', n, '--deadline', str(deadline)]) for n in a.only]
def child_cmd(a, mode, extra, js, hang_s) -> list:
    return [sys.executable, __file__, '--worker', mode, '--json', str(js), '--hang-s', f'{hang_s:.0f}', '--seconds', str(a.seconds),
            '--warmup', str(a.warmup), '--runs', a.runs, f'--full-overrides={a.full_overrides}', *['--dry-run'] * a.dry_run,
            *([] if '--only' in extra else ['--only', *a.only]), *extra]

def plan(a) -> dict:
    seq, (groups, why) = configs(a, 'sequential'), stack_groups(configs(a, 'stacks'))
    cmds = lambda m: dict(models=len(jobs(a, m)), commands=[shlex.join(child_cmd(a, w, x, 'ROW.json', 600)) for w, x in jobs(a, m)])
    return dict(configs=[dict(name=c.run_name, embedding=c.embedding, n_layers=c.n_layers, d_model=c.d_model) for c in seq],
                modes=dict(sequential=dict(models=len(seq), order=[c.run_name for c in seq], seconds_each=a.seconds / len(seq)),
                           processes=cmds('processes'), mps=cmds('mps') | dict(control=shutil.which('nvidia-cuda-mps-control')),
                           stacks=dict(models=sum(map(len, groups)), groups=[[c.run_name for c in g] for g in groups], why=why),
                           streams=dict(models=len(a.only), members=stream_plan([c.run_name for c in configs(a, 'streams')]))))

class Member:
    "One Trainer or Stack in training; step() issues its next optimiser step (on its own stream under StreamStep)."
    def __init__(self, obj, log_every: int = 0):
        self.obj, self.log_every, self.log, self.stack = obj, log_every, [], isinstance(obj, Stack)
        if not self.stack: obj.start(obj.phases[0])           # its AdamW (and graph); a no-op if streams_members did it
        self.graph = getattr(obj, 'graph', None)
        self.cfg, self.names = (obj.cfgs[0], [c.run_name for c in obj.cfgs]) if self.stack else (obj.cfg, [obj.cfg.run_name])
        self.ctx = (lambda: torch.cuda.stream(self.graph.stream)) if isinstance(self.graph, StreamStep) else contextlib.nullcontext
    def step(self):
        o = self.obj
        with self.ctx():                                       # the loss is read on the stream that wrote it
            loss = o.train_step(o.batch(o.step)) if self.stack else o.one_step(o.phases[0])   # lr set, graph or eager
            o.step += 1
            if self.log_every and o.step % self.log_every == 0: self.log.append((o.step, loss.clone(), o.objective.tau.detach()))

def drive(members, seconds=None, steps=None) -> float:
    "Round-robin from the host, a step of each member per round, until `seconds` or `steps` rounds or max_steps; wall s."
    sync(); t0, n, live = time.perf_counter(), 0, [m for m in members if m.obj.step < m.cfg.max_steps]
    while live and (steps is None or n < steps) and (seconds is None or time.perf_counter() - t0 < seconds):
        for m in live: m.step()
        n, live = n + 1, [m for m in live if m.obj.step < m.cfg.max_steps]
    sync(); return time.perf_counter() - t0

def step_flops(obj, cfg, s: int) -> float:
    "Model FLOPs of step s of a Trainer (device batches) or a Stack (members padded to their longest), from host lengths."
    if isinstance(obj, Stack):                                 # each part at its longest across the members
        bs = [t.phases[0].batches for t in obj.members]
        ls = torch.tensor([b._lens[:, b.indices(s)].max(1).tolist() for b in bs]).max(0).values
        return obj.M * flops_per_step(cfg, cfg.batch_size, ls.tolist())
    b = obj.phases[0].batches
    idx = b.indices(s)
    return flops_per_step(cfg, len(idx), b.lengths(idx, joint=cfg.fuse_pairs))
def model_flops(obj, cfg, s0: int, s1: int) -> float:
    "FLOPs of steps s0 .. s1-1, from a sample of up to 200 of them."
    ss = range(s0, s1, max(1, (s1 - s0) // 200))
    return sum(step_flops(obj, cfg, s) for s in ss) * (s1 - s0) / max(1, len(ss))

def sync(): return GPU and torch.cuda.synchronize()
def gpu_name(): return torch.cuda.get_device_name() if GPU else 'cpu'

def timed(members, a, seconds) -> dict:
    "Warm up (graphs are captured), then time the members together: one run of a schedule."
    setup, s0 = drive(members, steps=a.warmup), [m.obj.step for m in members]
    wall = drive(members, seconds=seconds); done = [m.obj.step - s for m, s in zip(members, s0)]
    return dict(models=sum(len(m.names) for m in members), rounds=max(1, *done), wall=wall, setup=setup,
                nonfinite=[n for m in members if not isinstance(m.obj, Stack) and m.obj._bad.item() >= 0 for n in m.names],
                per_model={n: round(d / wall, 1) for m, d in zip(members, done) for n in m.names},
                flops=sum(model_flops(m.obj, m.cfg, s, s + d) for m, s, d in zip(members, s0, done)))
def row(mode, runs, a, **extra) -> dict:
    "Runs one after another, each giving every model the same steps: aggregate model-steps/s and MFU of that schedule."
    inv, models = sum(r['wall'] / r['rounds'] for r in runs), sum(r['models'] for r in runs)
    pk = next((v for k, v in PEAK_BF16.items() if k in gpu_name()), None)              # dense bf16 FLOP/s
    agg, fl = models / inv, sum(r['flops'] / r['rounds'] for r in runs) / inv      # inv: s for one step of every model
    return dict(mode=mode, models=models, aggregate_model_steps_per_s=round(agg, 1), mfu=round(fl / pk, 4) if pk else None,
                per_model_steps_per_s={k: v for r in runs for k, v in r['per_model'].items()}, model_tflops=round(fl / 1e12, 3),
                seconds=a.seconds, setup_s=round(sum(r['setup'] for r in runs), 1), nonfinite=[n for r in runs for n in r['nonfinite']],
                projected_122700_each_s=round(models * STEPS / agg, 1), device=gpu_name(), torch=torch.__version__, **extra)

def streams_members(cfgs, log_every=0, resume=False) -> tuple:
    "Trainers on streams of their own, graphs captured one model at a time before any replay; (members, plan)."
    trs = [Trainer(c, progress=False) for c in cfgs]
    [tr.resume() for tr in trs if resume]
    makers = (lambda: torch.cuda.Stream(priority=-1), torch.cuda.Stream, torch.cuda.graph_pool_handle) if GPU else ()
    plan = stream_plan([c.run_name for c in cfgs], *makers)    # replay streams high priority: another pool of torch's
    for tr, p in zip(trs, plan):
        tr.start(tr.phases[0])                                 # AdamW (resumed: already started)
        if GPU: tr.graph = StreamStep(tr, tr.phases[0], p['stream'], p['pool'], p['capture']); tr.graph.build()
    return [Member(tr, log_every) for tr in trs], [{k: str(getattr(v, 'cuda_stream', v)) for k, v in p.items()} for p in plan]

def measure(mode, a) -> dict:
    "One in-process mode (sequential, stacks, streams) or the check: its row."
    if mode == 'check':                                        # the same two runs alone, then together
        names = ('table1-fourier-L1-d256', 'table1-learned-L1-d512')
        alone, both = (streams_members(configs(a, 'check', names=names, extra=',dropout=0'), log_every=1)[0] for _ in '12')
        [drive([m], steps=60) for m in alone]; drive(both, steps=60)
        diff = max(abs(x[1].item() - y[1].item()) for p, q in zip(alone, both) for x, y in zip(p.log, q.log))
        return dict(mode='check', models=2, steps=60, max_abs_loss_diff=diff, device=gpu_name(), torch=torch.__version__,
                    check=f'{names} (dropout 0): 60 steps each alone, then together on streams, from one start')
    cfgs, runs = configs(a, mode), []
    if mode == 'streams':
        members, plan = streams_members(cfgs)
        return row(mode, [timed(members, a, a.seconds)], a, streams=plan, peak_mem_gb=GPU and round(torch.cuda.max_memory_allocated() / 2**30, 2))
    groups, why = stack_groups(cfgs) if mode == 'stacks' else ([[c] for c in cfgs], None)
    for g in groups:                                           # one after another, each model (or stack) alone
        obj = Stack(g, progress=False) if mode == 'stacks' else Trainer(g[0], progress=False)
        runs.append(timed([Member(obj)], a, a.seconds / len(groups))); del obj; gc.collect(); GPU and torch.cuda.empty_cache()
    return row(mode, runs, a, **(dict(groups=[[c.run_name for c in g] for g in groups], why=why) if mode == 'stacks' else {}))

def full(mode, a, deadline) -> dict:
    "The configs x max_steps, in turn (sequential) or at once (streams), until `deadline`, resuming their run folders."
    cfgs, t0, ms, setup = configs(a, 'full', full=True), time.time(), [], 0.0
    for g in [cfgs] if mode == 'streams' else [[c] for c in cfgs]:
        if time.time() >= deadline: ms += [dict(run_name=c.run_name, status='not started', step=0, done=0) for c in g]; continue
        t = time.time(); members = streams_members(g, log_every=g[0].log_every, resume=True)[0]; setup += time.time() - t
        s0, wall = [m.obj.step for m in members], drive(members, seconds=max(0.0, deadline - time.time()))
        for m, s in zip(members, s0):                          # a checkpoint each: the same command resumes them
            tr, ph = m.obj, m.obj.phases[0]; tr.train_time += wall   # history rows as Trainer.log writes them
            tr.history += [dict(step=k, loss=round(l.item(), 5), tau=round(t.item(), 5), lr=ph.lr_at(k - 1), phase=ph.name)
                           for k, l, t in m.log]
            tr.save(ph); ms.append(dict(run_name=tr.cfg.run_name, status='partial', step=tr.step, done=tr.step - s))
        del members; gc.collect()
    if all(m['step'] >= c.max_steps for m, c in zip(ms, cfgs)): ms = [train_and_eval(c, progress=False) for c in cfgs]
    done, ok = sum(m.get('done', m.get('steps', 0)) for m in ms), all(m.get('status') == 'done' for m in ms)
    keep, wall = 'run_name status steps step train_time_s loss_final stsb-dev_spearman stsb-test_spearman'.split(), time.time() - t0
    return dict(complete=ok, wall_s=round(wall, 1), model_steps_done=done, runs=[{k: m[k] for k in keep if k in m} for m in ms],
                projected_s=None if ok else round(setup + (wall - setup) * len(cfgs) * STEPS / max(done, 1), 1))

def children(a, todo, timeout, env=None, tag='') -> list:
    "Run [(worker mode, extra args)] as child processes at once, killed at `timeout`: their rows, or errors and log tails."
    tmp, t0, ps = Path(tempfile.mkdtemp(prefix='fnb-many-')), time.time(), []
    for i, (mode, extra) in enumerate(todo):
        log = Path(a.out).parent/f"gpu_many-{tag or mode}{'-' + extra[1] if '--only' in extra else ''}.log"
        cmd = child_cmd(a, mode, extra, tmp/f'{i}.json', max(5, timeout - 15))
        ps.append((subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log, 'w'), stderr=subprocess.STDOUT), log))
    rows = []
    for i, ((mode, _), (p, log)) in enumerate(zip(todo, ps)):
        try: rc = p.wait(timeout=max(1, t0 + timeout - time.time()))
        except subprocess.TimeoutExpired: p.kill(); rc = f'killed after {timeout:.0f} s (a hang?)'
        js = tmp/f'{i}.json'                                   # a row, or why there is none
        rows.append(json.loads(js.read_text()) if js.exists() else dict(mode=mode, error=f'exit {rc}', log_tail=log.read_text()[-3000:]))
    return rows

def run_mode(a, mode, timeout, deadline=0.0) -> dict:
    "A mode's row (or --full summary when `deadline`): its children; processes and mps summed over theirs."
    if mode not in ('processes', 'mps'): return children(a, jobs(a, f'full-{mode}' if deadline else mode, deadline), timeout)[0]
    ctl, d = shutil.which('nvidia-cuda-mps-control'), tempfile.mkdtemp(prefix='fnb-mps-')
    if mode == 'mps' and not ctl: return dict(mode=mode, error='nvidia-cuda-mps-control is not on PATH: no MPS here')
    env, t0 = dict(os.environ) | (dict(CUDA_MPS_PIPE_DIRECTORY=f'{d}/pipe', CUDA_MPS_LOG_DIRECTORY=f'{d}/log') if mode == 'mps' else {}), time.time()
    try:                                                       # the daemon gets its own folders; its clients find it there
        if mode == 'mps': subprocess.run([ctl, '-d'], env=env, check=True, timeout=30)
        rows = children(a, jobs(a, mode, deadline), timeout, env, tag=('full-' if deadline else '') + mode)
    finally:
        if mode == 'mps': subprocess.run([ctl], input='quit\n', text=True, env=env, timeout=30)
    wall, bad, good = time.time() - t0, {n: r for n, r in zip(a.only, rows) if 'error' in r}, [r for r in rows if 'error' not in r]
    if deadline:                                               # concurrent: the whole run ends with its slowest process
        ok, done = not bad and all(r['complete'] for r in good), sum(r['model_steps_done'] for r in good)
        return dict(complete=ok, wall_s=round(wall, 1), model_steps_done=done, errors=bad, runs=[x for r in good for x in r['runs']],
                    projected_s=None if ok else max([r['projected_s'] or 0 for r in good] or [0]))
    if not good: return dict(mode=mode, error='no process reported a rate', errors=bad)
    tot, mfu = sum(r['aggregate_model_steps_per_s'] for r in good), [r['mfu'] for r in good]
    return dict(mode=mode, models=len(good), aggregate_model_steps_per_s=round(tot, 1), mfu=None if None in mfu else round(sum(mfu), 4),
                per_model_steps_per_s={k: v for r in good for k, v in r['per_model_steps_per_s'].items()}, seconds=a.seconds,
                setup_s=max(r['setup_s'] for r in good), projected_122700_each_s=round(len(good) * STEPS / tot, 1), wall_s=round(wall, 1),
                device=gpu_name(), torch=torch.__version__, errors=bad, note='the sum of each process timing itself after its warm-up')

def work(a):
    "The child side: one mode (or one process of processes/mps), its row written to --json."
    faulthandler.dump_traceback_later(a.hang_s, exit=True)    # a hang prints every thread's stack, then exits
    try: r = full(a.worker[5:], a, a.deadline) | dict(mode=a.worker) if a.worker.startswith('full-') else measure(a.worker, a)
    except Exception as e:
        import traceback; traceback.print_exc(); r = dict(mode=a.worker, error=f'{type(e).__name__}: {e}')
    Path(a.json).write_text(json.dumps(r)); print(json.dumps(r))

def args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    for k, d, h in (('--modes', ','.join(MODES), 'comma-separated, of: ' + ', '.join(MODES)), ('--seconds', 25.0, 'timed s per mode'),
                    ('--warmup', 10, 'untimed steps per model first'), ('--budget-s', 0.0, '--full stops after this many s (0: none)'),
                    ('--total-s', 0.0, 'wall s for it all; --full gets what is left (0: none)'),
                    ('--full-overrides', 'eval_every=0', "--full's Config overrides"), ('--runs', '/tmp/fnb-gpu-many', 'run folders'),
                    ('--out', '', 'default $OUT/gpu_many.json, else benchmarks/gpu_many.json'), ('--worker', '', ''),
                    ('--json', '', ''), ('--hang-s', 600.0, ''), ('--deadline', 0.0, '')):
        ap.add_argument(k, type=type(d), default=d, help=h or argparse.SUPPRESS)
    for k, h in (('--check', 'first: 2 models alone, then on streams'), ('--full', 'then configs x 122,700 steps'), ('--dry-run', 'CPU plan')):
        ap.add_argument(k, action='store_true', help=h)
    ap.add_argument('--mode', default='fastest', choices=('fastest', *MODES), help="--full's mode (fastest: best measured)")
    ap.add_argument('--only', nargs='+', default=CONFIGS, metavar='CONFIG', help='a subset of the eight configs')
    a = ap.parse_args(argv)
    a.modes = [m for m in a.modes.split(',') if m]
    bad = ([f'--modes: unknown {m!r} (of {", ".join(MODES)})' for m in a.modes if m not in MODES]
           + [f'--only: unknown config {c!r} (of {", ".join(CONFIGS)})' for c in a.only if c not in CONFIGS]
           + ['--seconds must be > 0'] * (a.seconds <= 0) + ['--warmup, --budget-s, --total-s must be >= 0'] * (min(a.warmup, a.budget_s, a.total_s) < 0)
           + ['--full --mode fastest needs measured --modes; give --mode'] * (a.full and a.mode == 'fastest' and not a.modes)
           + ['--full does not run stacks (eager vmap, never the fastest)'] * (a.full and a.mode == 'stacks'))
    if bad: ap.error('; '.join(bad))
    return a

def main(argv=None):
    a = args(argv)
    if not (GPU or a.dry_run): sys.exit(NO_CUDA)
    if a.worker: return work(a)                                # a child; with --dry-run, on the CPU with the stand-ins
    if a.dry_run:
        out = dict(dry_run=True, device='cpu: tiny stand-ins (d_model 256 -> 32, 512 -> 64)', plan=plan(a))
        print(json.dumps(out, indent=1)); a.out and Path(a.out).write_text(json.dumps(out, indent=1)); return out
    a.out = a.out or str(Path(os.environ['OUT'])/'gpu_many.json' if os.environ.get('OUT') else ROOT/'benchmarks'/'gpu_many.json')
    t0 = time.time(); left = lambda: t0 + (a.total_s or float('inf')) - time.time()
    out = dict(device=gpu_name(), torch=torch.__version__, rows=[], fastest_mode=None, table1_all_eight_wall_s=None,
               table1_all_eight_projected_s=None, projection=None, plan=plan(a), args=vars(a))
    save = lambda: Path(a.out).write_text(json.dumps(out, indent=1))
    for mode in ['check'] * a.check + a.modes:
        t = min(2 * a.seconds + 150, left() - 60)              # start-up and capture allowance; a minute kept back
        try: r = dict(mode=mode, error='skipped: --total-s used up') if t < 45 else run_mode(a, mode, t)
        except Exception as e: r = dict(mode=mode, error=f'{type(e).__name__}: {e}')
        out['rows'].append(r); print(json.dumps(r), flush=True); save()
    ok = [r for r in out['rows'] if r.get('mode') in MODES and r.get('models') == len(a.only) and r['aggregate_model_steps_per_s'] > 0]
    if ok:                                                     # the fastest mode (for --full: not stacks, eager vmap)
        b = max(ok, key=lambda r: (r['mode'] != 'stacks', r['aggregate_model_steps_per_s']))
        out |= dict(fastest_mode=b['mode'], table1_all_eight_projected_s=b['projected_122700_each_s'],
                    projection=f"models x 122,700 / the {b['mode']} aggregate, {b['aggregate_model_steps_per_s']} model-steps/s")
    mode, budget = (a.mode if a.mode != 'fastest' else out['fastest_mode']), min(a.budget_s or 4 * 3600, left() - 45)
    if a.full and (not mode or budget < 30): out['full'] = dict(mode=mode, error='skipped: no mode measured or no time left')
    elif a.full:                                               # training stops at the deadline; start-up and evaluation beyond
        t = time.time(); r = run_mode(a, mode, min(budget + 200, left() - 5), deadline=t + budget); w = round(time.time() - t, 1)
        out |= dict(full=r | dict(mode=mode, budget_s=round(budget, 1), command_wall_s=w), table1_all_eight_wall_s=r.get('complete') and w or None)
        if not r.get('complete') and r.get('projected_s'):
            out |= dict(table1_all_eight_projected_s=r['projected_s'], projection=f'the --full {mode} run, linear in model-steps')
    save(); print(f"wrote {a.out}: fastest {out['fastest_mode']}, all eight {out['table1_all_eight_wall_s']} s "
                  f"(projected {out['table1_all_eight_projected_s']} s)")
    return out

if __name__ == '__main__': main()
