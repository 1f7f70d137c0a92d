"""What does dynamic int8 quantisation of the Linear layers buy on a CPU, for the kit's transformer and for MiniLM?

    cd /work/main && .venv/bin/python benchmarks/encode_int8.py --run runs/cpu-demo [--int8-backend torch.ao|torchao] \\
        [--threads 2] [--batch-size 32] [--repeats 3] [--n 10000] [--out FILE]

Four rows in one process (see _common.py for what is measured and how), each fp32 row measured beside its int8 row:
  - the kit transformer fp32, and int8: its blocks' and pooler's Linears quantised, its token embedding kept fp32
    (encode's fast path computes it once per distinct id, then runs model(ids, mask, table=...) through the quantised
    blocks; the row records that check: int8 Linears called, the fast path against the plain forward, int8 vs fp32);
  - all-MiniLM-L6-v2 fp32, and int8 with all of its Linears quantised the same way.
Bags are not quantised (a mean of table rows, then at most one pooler Linear per sentence: tokenizer-bound). Backend:
torch.ao.quantization.quantize_dynamic (default; deprecated in torch but present, fbgemm/x86 int8 kernels) or torchao's
quantize_(Int8DynamicActivationInt8WeightConfig()) (`pip install torchao`; torchao 0.18 on CPU in eager mode ran the
kit's 1/256 encoder at 0.9-1.6x fp32 where torch.ao gave about 2.6x, so it is not the default). STS-B test is measured
on the quantised models. Needs `pip install -e '.[st]'`. Writes benchmarks/encode_int8.json."""
import contextlib, importlib.util, io, warnings
import numpy as np
import torch
import _common as C

METHODS = {'torch.ao': 'torch.ao.quantization.quantize_dynamic(dtype=torch.qint8): per-tensor int8 weights, '
                       'activations quantised per batch at run time',
           'torchao': 'torchao.quantization.quantize_(Int8DynamicActivationInt8WeightConfig()): int8 weights '
                      '(per channel) and activations (per token, at run time)'}

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
    if not int8_linears(model)[0]: raise RuntimeError(f"{backend}: no Linear was quantised")
    return model

def check_kit_int8(q: torch.nn.Module, ref: torch.nn.Module, texts: list, batch_size: int) -> dict:
    """Does encode's fast path (the embedding once per distinct id, then model(ids, mask, table=...)) run the int8
    Linears? Counts their calls during q.encode and compares one batch of it (the same batch, so the same activation
    scales) with the same forward written out: the table of the batch's distinct ids, pad positions on its row 0, as
    fourier_nb.model.encode_ids pads (must agree to 1e-6). Also reported: the plain forward q(ids, mask), whose pad
    positions hold [PAD]'s vector instead (masked out in fp32, but inside int8's per-batch activation range, so it
    differs by about one int8 step), and the vectors against the fp32 model's."""
    qmods, fp32 = int8_linears(q)
    inside = {id(m) for part in (q.blocks, q.pooler) if part is not None for m in part.modules()}
    left, calls = [m for m in fp32 if id(m) in inside], []
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in qmods]
    try: v = q.encode(texts[:batch_size], batch_size=batch_size)               # one batch: every sentence in it
    finally:
        for h in hooks: h.remove()
    tokenize = getattr(q.tokenizer, 'encode_batch_fast', q.tokenizer.encode_batch)
    lens, pad = C.padder([e.ids for e in tokenize(texts[:batch_size])])
    ids, mask = pad(np.arange(len(lens)))
    uniq = torch.unique(ids[mask])                                             # sorted, as encode_ids' np.unique
    rows = torch.where(mask, torch.searchsorted(uniq, ids), 0)
    with torch.inference_mode():
        same, plain = q(rows, mask, q.embed(uniq, check=False)).numpy(), q(ids, mask).numpy()
    fp = ref.encode(texts[:batch_size], batch_size=batch_size)
    diff = lambda x: float(np.abs(v - x).max())
    out = dict(int8_linears=len(qmods), fp32_linears_left_in_blocks_pooler=len(left), int8_linear_calls_in_encode=len(calls),
               fast_path_vs_table_forward_max_abs_diff=diff(same), fast_path_vs_plain_forward_max_abs_diff=diff(plain),
               int8_vs_fp32_max_abs_diff=diff(fp))
    ok = not left and len(calls) >= len(qmods) and out['fast_path_vs_table_forward_max_abs_diff'] < 1e-6 \
         and out['int8_vs_fp32_max_abs_diff'] > 0
    if not ok: print(f"warning: the int8 kit model's encode check failed: {out}")
    return out | dict(fast_path_uses_int8=ok)

def main(argv=None) -> dict:
    ap = C.parser(__doc__, 'encode_int8.json')
    ap.add_argument('--int8-backend', choices=list(METHODS), default='torch.ao',
                    help='torch.ao.quantization.quantize_dynamic, or torchao quantize_ (pip install torchao)')
    a = ap.parse_args(argv)
    rep = C.Report(a, __doc__.split('\n')[0])
    run, mini = C.kit_folder(a.run, '--run'), C.minilm_folder()
    from sentence_transformers import __version__ as st_version
    texts, test = C.sentences(rep.cfg, a.n), C.stsb_test(rep.cfg)
    int8 = dict(quantization=METHODS[a.int8_backend], params_note='of the fp32 model (the same weights, int8)')

    row, model = C.kit_row(run, texts, test, a)
    rows = [row]
    r8, q = C.kit_row(run, texts, test, a, wrap=lambda m: quantize_int8(m, a.int8_backend, only=('blocks', 'pooler')),
                      tag=' [int8]', quantized=C.INT8, n_params=lambda _: row['params'])
    rows.append(r8 | int8 | check_kit_int8(q, model, texts, a.batch_size))
    del q, model

    row, model = C.bench('all-MiniLM-L6-v2', lambda: C.minilm(mini), C.st_encode, C.n_params, texts, test, a.batch_size,
                         a.repeats)
    fp32_params, ref = row['params'], C.st_encode(model, texts[:4 * a.batch_size], a.batch_size)
    rows.append(C.minilm_row(row, model, mini))
    del model
    row, model = C.bench('all-MiniLM-L6-v2 [int8]', lambda: quantize_int8(C.minilm(mini), a.int8_backend), C.st_encode,
                         lambda _: fp32_params, texts, test, a.batch_size, a.repeats)
    q, fp = int8_linears(model)
    rows.append(C.minilm_row(row, model, mini, quantized=C.INT8, **int8, int8_linears=len(q), fp32_linears_left=len(fp),
                             int8_vs_fp32_max_abs_diff=float(np.abs(C.st_encode(model, texts[:4 * a.batch_size],
                                                                                 a.batch_size) - ref).max())))
    t, m = 'kit transformer', 'sentence-transformers'
    ratios = {'transformer int8 / transformer fp32': C.ratio(C.speed(rows, t, C.INT8), C.speed(rows, t)),
              'MiniLM int8 / MiniLM fp32': C.ratio(C.speed(rows, m, C.INT8), C.speed(rows, m)),
              'transformer fp32 / MiniLM fp32': C.ratio(C.speed(rows, t), C.speed(rows, m)),
              'transformer int8 / MiniLM fp32': C.ratio(C.speed(rows, t, C.INT8), C.speed(rows, m)),
              'transformer int8 / MiniLM int8': C.ratio(C.speed(rows, t, C.INT8), C.speed(rows, m, C.INT8))}
    deploy = dict(int8_method=METHODS[a.int8_backend], int8_bags='not quantised: a mean of table rows, at most one pooler '
                  'Linear per sentence: tokenizer-bound')
    if a.int8_backend == 'torchao':
        import torchao; deploy['torchao'] = torchao.__version__
    out = rep.write(rows, sentence_transformers=st_version, int8_backend=a.int8_backend, deploy=deploy, ratios=ratios)
    r = rows[1]
    print(f"{r['model']}: encode's fast path runs {r['int8_linears']} int8 Linears: {r['fast_path_uses_int8']} "
          f"({r['int8_linear_calls_in_encode']} calls in one batch; vs the same forward written out "
          f"{r['fast_path_vs_table_forward_max_abs_diff']:.1e}, vs the plain forward "
          f"{r['fast_path_vs_plain_forward_max_abs_diff']:.1e}, vs fp32 {r['int8_vs_fp32_max_abs_diff']:.1e})")
    return out

if __name__ == '__main__': main()
