"""M same-shaped InfoNCE runs trained as one: stacked weights, one vmapped forward and backward, one AdamW step with
each member's own settings; then every member gets the run folder its single run would have. Out of fourier_nb: it ran
at 0.62-1.08x of separate runs on a 2-core CPU (benchmarks/stack_cpu.json) and never ran on a GPU. Members are
`fourier_nb.train.Trainer`s built as single runs; the stack trains their one InfoNCE phase (other losses and fine-tuning
are refused). Per member: AdamW equal to torch's, its own clipping, a NaN stop that names it; exact resume from the
stack's checkpoint (<out_dir>/stack-<first run>-x<M>-<hash>/); member folders of other settings refused (RunMismatch)
before any work, every member folder locked until it is written.
    python benchmarks/stack.py --config configs/cpu-demo.yaml --seeds 0,1,2 [--grid "lr=1e-3|3e-3"] [--overrides k=v]
"""
from __future__ import annotations
import argparse, contextlib, copy, hashlib, random, sys, time
from pathlib import Path
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fourier_nb import run as fnb_run                                             # noqa: E402
from fourier_nb.config import Config, run_dir                                     # noqa: E402
from fourier_nb.fourier import check_ids                                          # noqa: E402
from fourier_nb.train import NonFiniteLoss, Trainer                               # noqa: E402
from fourier_nb.checkpoint import guard_run_folder, read_tensors, write_tensors   # noqa: E402
from fourier_nb.files import write_json                                           # noqa: E402
from fourier_nb.evaluate import _bar                                              # noqa: E402
from fourier_nb.distributed import dist_env                                       # noqa: E402
from fourier_nb.cli import FIXABLE, config_from_args, grid_configs, parse_seeds   # noqa: E402

MEMBER_FIELDS = {'run_name', 'out_dir', 'seed', 'lr', 'emb_lr', 'weight_decay', 'grad_clip', 'warmup_steps', 'tau_init',
                 'train_data', 'max_pairs', 'train_fraction', 'subset_seed', 'max_len', 'mask_groups', 'data_source',
                 'data_dir', 'cache_dir', 'log_every', 'eval_every', 'select_on_dev', 'eval_batch_size'}   # may differ
SINGLE_RUN_ONLY = {'device_data', 'pad_multiple', 'fused_adam', 'compile', 'fuse_pairs', 'cuda_graphs'}   # ignored
PLAIN = dict(device_data=False, compile=False, cuda_graphs=False, fuse_pairs=False)        # how members are built

def check_stackable(cfgs: list) -> list:
    "Raise a ValueError naming the first run or field that cannot share a stack; return cfgs."
    if not cfgs: raise ValueError("A stack needs at least one run")
    for c in cfgs:
        if c.loss != 'infonce' or c.finetune_steps:
            raise ValueError(f"{c.run_name}: a stack trains one InfoNCE phase only, not loss={c.loss!r} with "
                             f"finetune_steps={c.finetune_steps}; train this run alone (python -m fourier_nb.cli)")
    dirs = [str(run_dir(c)) for c in cfgs]
    if dup := sorted({d for d in dirs if dirs.count(d) > 1}):
        raise ValueError(f"Runs of a stack need distinct run folders (run_name); repeated: {dup}")
    first = cfgs[0].to_dict()
    for c in cfgs[1:]:
        for k, v in c.to_dict().items():
            if k not in MEMBER_FIELDS | SINGLE_RUN_ONLY and v != first[k]:
                raise ValueError(f"Runs of a stack must share Config.{k} (shapes, forward pass and step loop are "
                                 f"common): {cfgs[0].run_name} has {k}={first[k]!r}, {c.run_name} has {k}={v!r}. "
                                 f"Train them in separate stacks.")
    return cfgs

def stack_name(cfgs: list) -> str:
    "The stack's folder name under the first member's out_dir: stack-<first run>-x<M>-<hash of all run names>."
    h = hashlib.sha256('\n'.join(c.run_name for c in cfgs).encode()).hexdigest()[:8]
    return f'stack-{cfgs[0].run_name}-x{len(cfgs)}-{h}'

# ---- per-member AdamW and clipping on stacked (M, ...) tensors
def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    "(M,) -> (M, 1, 1, ...) in like's dtype, to scale each member's slice of `like`."
    return v.to(like.dtype).view(-1, *[1] * (like.dim() - 1))

def clip_members(grads: list, max_norm: torch.Tensor) -> torch.Tensor:
    "clip_grad_norm_ per member over stacked grads (M, ...); max_norm (M,), 0 = no clipping; returns the (M,) norms."
    norms = torch.stack([torch.linalg.vector_norm(g.reshape(len(g), -1), dim=1) for g in grads], 1)   # (M, tensors)
    total = torch.linalg.vector_norm(norms, dim=1)                                                   # (M,)
    coef = torch.where(max_norm > 0, (max_norm / (total + 1e-6)).clamp(max=1.0), torch.ones_like(total))
    for g in grads: g.mul_(_bcast(coef, g))
    return total

@torch.no_grad()
def adamw_members(p, g, st: dict, lr: torch.Tensor, wd: torch.Tensor, betas=(0.9, 0.999), eps: float = 1e-8):
    "One torch.optim.AdamW step on a stacked tensor p (M, ...) with gradient g; lr and wd are (M,) float64."
    if not st: st.update(step=0, exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
    st['step'] += 1
    (b1, b2), t, m, v = betas, st['step'], st['exp_avg'], st['exp_avg_sq']
    p.mul_(_bcast(1 - lr * wd, p))                                   # decoupled decay; a member with wd 0 keeps p
    m.lerp_(g, 1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    u = v.sqrt().div_((1 - b2 ** t) ** 0.5).add_(eps)                # the denominator, then the whole step in place
    p.sub_(torch.div(m, u, out=u).mul_(_bcast(lr / (1 - b1 ** t), p)))   # addcdiv with a per-member step size

def _named(tr: Trainer) -> list:
    "(name, parameter) of a member's encoder ('model.…') and objective ('loss.…'): the stack's key order."
    return [(f'{pre}.{k}', p) for pre, mod in (('model', tr.model), ('loss', tr.objective)) for k, p in mod.named_parameters()]

def _groups(members: list) -> dict:
    "Per parameter name: (M,) weight decay and lr scale, betas and eps, from each member's own AdamW groups."
    out, M = {}, len(members)
    for i, tr in enumerate(members):
        names = {id(p): k for k, p in _named(tr)}
        for g in tr.opt.param_groups:
            if g.get('amsgrad') or g.get('maximize'): raise ValueError("The stack's AdamW has no amsgrad or maximize")
            for p in g['params']:
                h = out.setdefault(names[id(p)], dict(wd=[0.0] * M, scale=[1.0] * M, betas=tuple(g['betas']), eps=g['eps']))
                h['wd'][i], h['scale'][i] = g['weight_decay'], g.get('lr_scale', 1.0)
                if (tuple(g['betas']), g['eps']) != (h['betas'], h['eps']):
                    raise ValueError(f"{names[id(p)]}: AdamW betas or eps differ between runs")
    return {k: h | {x: torch.tensor(h[x], dtype=torch.float64) for x in ('wd', 'scale')} for k, h in out.items()}

class Stack:
    "M same-shaped runs trained as one: `fit()` trains, `resume()` continues from the stack's checkpoint."
    def __init__(self, cfgs: list, name: str | None = None, progress: bool = True):
        self.cfgs, self.M, self.progress = check_stackable(list(cfgs)), len(cfgs), progress
        if dist_env()[1] > 1: raise ValueError("A stack runs in one process, not under torchrun")
        self.name, c0 = name or stack_name(self.cfgs), self.cfgs[0]
        self.dir = run_dir(c0).parent/self.name
        self.members = [Trainer(c.replace(**PLAIN), progress=False) for c in self.cfgs]   # each seeded as a single run
        for tr in self.members: tr.start(tr.phases[0])                                     # its own AdamW groups
        shapes = [{k: tuple(v.shape) for k, v in [*_named(tr), *tr.model.named_buffers()]} for tr in self.members]
        if bad := [c.run_name for c, s in zip(self.cfgs, shapes) if s != shapes[0]]:
            raise ValueError(f"Runs of a stack must have the same tensors: {bad} differ from {c0.run_name}")
        for p in [p for tr in self.members for p in tr.data.packs.values()]:   # ids checked once, not in each step
            check_ids(torch.tensor([int(p.ids.max()) if len(p.ids) else 0]), c0.vocab_size)
        self.device, self.max_steps = self.members[0].device, c0.max_steps
        self.mparams, self.buffers = stack_module_state([tr.model for tr in self.members])   # {name: (M, ...)}
        self.lparams = stack_module_state([tr.objective for tr in self.members])[0]
        self.params = {f'model.{k}': v for k, v in self.mparams.items()} | {f'loss.{k}': v for k, v in self.lparams.items()}
        self.base, self.base_loss = copy.deepcopy(self.members[0].model).train(), copy.deepcopy(self.members[0].objective)
        self.base.check_ids = False
        self.groups = {k: h | dict(wd=h['wd'].to(self.device), scale=h['scale'].to(self.device))
                       for k, h in _groups(self.members).items()}
        self.clip_to = torch.tensor([c.grad_clip for c in self.cfgs], device=self.device)   # (M,)
        self.state, self.grad_norm = {}, None                      # AdamW moments per tensor; (M,) pre-clip norms
        self.step, self.train_time, self.histories = 0, 0.0, [[] for _ in self.cfgs]

    @property
    def ckpt_path(self) -> Path: return self.dir/'checkpoint.safetensors'

    def batch(self, step: int) -> tuple:
        "({part: (ids, mask)} each (M, B, T), right-padded to the longest member; InfoNCE groups (M, B))."
        bs = [(tr.phases[0].rows, tr.phases[0].batches.batch(step)) for tr in self.members]
        parts = {}
        for k in bs[0][1].parts:
            T = max(b.parts[k][0].shape[1] for _, b in bs)         # id 0 and mask False: masked out everywhere
            parts[k] = tuple(torch.stack([F.pad(b.parts[k][j], (0, T - b.parts[k][j].shape[1])) for _, b in bs])
                             for j in (0, 1))
        rows = [(r, b.rows.to(self.device)) for r, b in bs]        # mask_groups=False: each row its own group
        return parts, torch.stack([r['groups'][i] if 'groups' in r else i for r, i in rows])

    def _member_loss(self, mp: dict, buffers: dict, lp: dict, parts: dict, groups) -> torch.Tensor:
        "One member's InfoNCE from its own slices (the function vmap maps over the stack)."
        dev = self.device
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.cfgs[0].bf16 and dev.type == 'cuda'):
            vecs = {k: functional_call(self.base, (mp, buffers), (ids, mask)) for k, (ids, mask) in parts.items()}
        return functional_call(self.base_loss, lp, (vecs, ('infonce',)), dict(groups=groups))

    def losses(self, batch: tuple) -> torch.Tensor:
        "The (M,) losses of a stacked batch."
        dev, attn, (parts, groups) = self.device, torch.nn.attention, batch
        parts = {k: (ids.to(dev), mask.to(dev)) for k, (ids, mask) in parts.items()}
        sdpa = attn.sdpa_kernel(attn.SDPBackend.MATH) if dev.type == 'cpu' else contextlib.nullcontext()
        with sdpa:                                                 # the fused CPU kernel has no vmap rule
            return vmap(self._member_loss, randomness='different')(self.mparams, self.buffers, self.lparams, parts, groups)

    def train_step(self, batch: tuple) -> torch.Tensor:
        "One optimiser step of every member on a stacked batch; returns the (M,) detached losses."
        losses = self.losses(batch)
        if not torch.isfinite(losses.detach()).all(): self._stop(losses.detach())
        for v in self.params.values(): v.grad = None
        losses.sum().backward()                                    # members share nothing: each gets its own gradient
        self.grad_norm = clip_members([v.grad for k, v in self.params.items() if k.startswith('model.')
                                       and v.grad is not None], self.clip_to)
        lr = torch.tensor([tr.phases[0].lr_at(self.step) for tr in self.members], dtype=torch.float64, device=self.device)
        for k, p in self.params.items():
            if p.grad is not None and k in self.groups:            # as torch: no gradient, no step
                h = self.groups[k]
                adamw_members(p, p.grad, self.state.setdefault(k, {}), lr * h['scale'], h['wd'], h['betas'], h['eps'])
        return losses.detach()

    def _stop(self, losses):
        bad = (~torch.isfinite(losses)).nonzero()[:, 0].tolist()
        who = ', '.join(f"{self.cfgs[i].run_name} (member {i}, loss {losses[i].item()})" for i in bad)
        raise NonFiniteLoss(f"non-finite loss at step {self.step} in {who}: the whole stack {self.name} stopped before "
                            f"the update; the last good checkpoint is kept at {self.ckpt_path}. Lower that member's "
                            f"lr, or drop it from the stack (a new stack: the checkpoint records its members).")

    @torch.no_grad()
    def unstack(self, i: int, moments: bool = False) -> Trainer:
        "Member i as a single run: its Trainer with the stack's weights, step, time, history (and AdamW moments)."
        tr, named = self.members[i], dict(_named(self.members[i]))
        for k, v in self.params.items(): named[k].copy_(v[i])
        for k, s in self.state.items() if moments else ():
            tr.opt.state[named[k]] = dict(step=torch.tensor(float(s['step'])), exp_avg=s['exp_avg'][i].clone(),
                                          exp_avg_sq=s['exp_avg_sq'][i].clone())
        tr.step, tr.train_time, tr.history = self.step, self.train_time, self.histories[i]
        return tr

    def save(self):
        "The whole stack's state in one safetensors file (atomically): stacked tensors, AdamW moments, RNG, histories."
        t = {f'param.{k}': v for k, v in self.params.items()}
        for k, st in self.state.items(): t |= {f'opt.{k}.{m}': st[m] for m in ('exp_avg', 'exp_avg_sq')}
        t['rng.torch'] = torch.get_rng_state()
        if torch.cuda.is_available(): t['rng.cuda'] = torch.cuda.get_rng_state()
        write_tensors(self.ckpt_path, t, dict(configs=[c.to_dict() for c in self.cfgs], step=self.step,
                      train_time=self.train_time, histories=self.histories, py_rng=random.getstate(),
                      opt_steps={k: st['step'] for k, st in self.state.items()}))

    @torch.no_grad()
    def resume(self) -> bool:
        "Continue from the stack's checkpoint if there is one (same members, same settings); True if one was loaded."
        if not self.ckpt_path.exists(): return False
        t, meta = read_tensors(self.ckpt_path)
        old = [Config.from_dict(d) for d in meta['configs']]
        if [c.run_name for c in old] != [c.run_name for c in self.cfgs]:
            raise ValueError(f"{self.ckpt_path} holds the runs {[c.run_name for c in old]}, not "
                             f"{[c.run_name for c in self.cfgs]}: use another stack name, or delete {self.dir}")
        for a, b in zip(old, self.cfgs):
            if diff := a.differences(b):
                raise ValueError(f"{self.ckpt_path}: member {b.run_name} was written with other settings: " + ', '.join(
                    f'{k}: checkpoint {x!r} vs now {y!r}' for k, (x, y) in diff.items()))
        for k, v in self.params.items(): v.copy_(t[f'param.{k}'])
        self.state = {k: dict(step=n, exp_avg=t[f'opt.{k}.exp_avg'].to(self.device),
                              exp_avg_sq=t[f'opt.{k}.exp_avg_sq'].to(self.device)) for k, n in meta['opt_steps'].items()}
        torch.set_rng_state(t['rng.torch'])
        if 'rng.cuda' in t and torch.cuda.is_available(): torch.cuda.set_rng_state(t['rng.cuda'])
        random.setstate(tuple(tuple(x) if isinstance(x, list) else x for x in meta['py_rng']))   # JSON made lists
        self.step, self.train_time, self.histories = meta['step'], meta['train_time'], meta['histories']
        return True

    def _after_step(self, i: int, loss: float, end: int):
        "Member i's history row and STS-B dev check (best weights kept when selecting), exactly as its single run's."
        c, ph, h = self.cfgs[i], self.members[i].phases[0], self.histories[i]
        due = lambda every: bool(every) and self.step % every == 0
        if due(c.log_every) or self.step in (end, self.max_steps):
            h.append(dict(step=self.step, loss=round(loss, 5), tau=round(self.unstack(i).objective.tau.item(), 5),
                          lr=ph.lr_at(self.step - 1), phase=ph.name))
        if due(c.eval_every) and self.step < self.max_steps:
            tr = self.unstack(i)
            dev = tr.evaluate()
            if not (h and h[-1]['step'] == self.step): h.append(dict(step=self.step, phase=ph.name))
            h[-1]['stsb-dev_spearman'] = dev
            if c.select_on_dev: tr.keep_if_best(ph, dev)

    def fit(self, stop_at: int | None = None) -> bool:
        "Train every member until max_steps (or stop_at / time_limit_s); True when the stack is complete."
        c0, end = self.cfgs[0], min(self.max_steps, stop_at or self.max_steps)
        bar = _bar(self.max_steps, f'stack {self.name}', self.progress)
        bar.update(self.step)
        while self.step < end:
            t0 = time.perf_counter()
            losses = self.train_step(self.batch(self.step)).tolist()
            self.step += 1
            self.train_time += time.perf_counter() - t0            # steps only: not logging, evaluations, checkpoints
            for i in range(self.M): self._after_step(i, losses[i], end)
            if self.step % c0.log_every == 0 or self.step == end:
                bar.update(self.step - bar.n)
                bar.set_postfix(loss=f'{sum(losses) / self.M:.3f}', steps_s=f'{self.step / max(self.train_time, 1e-9):.2f}')
            if c0.ckpt_every and self.step % c0.ckpt_every == 0: self.save()
            if c0.time_limit_s and self.train_time >= c0.time_limit_s: break
        bar.close()
        self.save()
        return self.step >= self.max_steps

def finish_member(st: Stack, i: int, progress: bool = True, resumed_from: int = 0, stack_wall_s: float = 0.0) -> dict:
    "Write member i's run folder as its single run would: its checkpoint, then run.train_and_eval (nothing to train)."
    tr = st.unstack(i, moments=True)
    tr.save(tr.phases[0])                     # the checkpoint of a finished single run
    m = fnb_run.train_and_eval(tr.cfg, progress, locked=True)   # the stack holds every member's lock
    if m.get('status') != 'done': return m
    m |= dict(resumed_from=resumed_from, stack=st.name, stack_size=st.M, wall_time_s=round(stack_wall_s + m['wall_time_s'], 2))
    write_json(run_dir(tr.cfg)/'metrics.json', m)
    return m

def train_stack(cfgs: list, progress: bool = True, name: str | None = None) -> list:
    "Train the runs `cfgs` as one stack (or resume it), then evaluate and write each member's folder; their metrics."
    cfgs = check_stackable(list(cfgs))
    threads = torch.get_num_threads()
    if cfgs[0].threads: torch.set_num_threads(cfgs[0].threads)
    try:
        t0 = time.time()
        with contextlib.ExitStack() as locks:                  # the stack's folder and every member's, to the end
            for d in [run_dir(cfgs[0]).parent/(name or stack_name(cfgs)), *map(run_dir, cfgs)]:
                locks.enter_context(fnb_run.run_lock(d))
            for c in cfgs: guard_run_folder(c)                 # a member folder of other settings: RunMismatch, no work
            st = Stack(cfgs, name, progress)
            resumed_from = st.step if st.resume() else 0
            if not st.fit():
                print(f"stack {st.name}: stopped at step {st.step}/{st.max_steps} (time limit); run again to resume")
                return [dict(status='partial', step=st.step, run_name=c.run_name) for c in cfgs]
            wall = time.time() - t0
            return [finish_member(st, i, progress, resumed_from, wall) for i in range(st.M)]
    finally: torch.set_num_threads(threads)

def main(argv=None) -> list:
    "Train one stack of runs (every grid cell times every seed) from YAML configs and overrides; their metrics."
    ap = argparse.ArgumentParser(prog='python benchmarks/stack.py', description=main.__doc__)
    for k, d, h in (('--config', [], 'YAML file of Config fields (repeatable)'), ('--overrides', '', 'k=v,... for all'),
                    ('--seeds', '', 'e.g. "0,1,2" (default: the config seed)'), ('--grid', [], '"key=v1|v2[,...]" axes'),
                    ('--name', None, "the stack's folder name (default: stack-<first run>-x<M>-<hash>)")):
        ap.add_argument(k, default=d, help=h, **(dict(action='append') if d == [] else {}))
    ap.add_argument('--no-progress', action='store_true', help='no progress bars')
    a = ap.parse_args(argv)
    try:
        cfg = config_from_args(a.config, a.overrides)
        cfgs = check_stackable(grid_configs(cfg, parse_seeds(a.seeds) if a.seeds else [], a.grid))
    except (ValueError, TypeError, FileNotFoundError) as e: ap.error(str(e))
    try: ms = train_stack(cfgs, progress=not a.no_progress, name=a.name)
    except FIXABLE as e: ap.exit(1, f"stack.py: {type(e).__name__}: {e}\n")
    g = lambda m, k: m.get(k, float('nan'))
    print(f"\n{'run':40}{'steps':>7}{'dev':>8}{'test':>8}{'sts7':>8}")
    for m in ms: print(f"{m['run_name']:40}{m.get('steps', m.get('step')):>7}{g(m, 'stsb-dev_spearman'):>8.2f}"
                       f"{g(m, 'stsb-test_spearman'):>8.2f}{g(m, 'sts7_mean'):>8.2f}")
    return ms

if __name__ == '__main__': main()
