"""What does onnxruntime buy on a CPU, for the kit's transformer and for MiniLM, against their torch fp32 encode?

    cd /work/main && .venv/bin/python benchmarks/encode_onnx.py --run runs/cpu-demo [--int8] \\
        [--threads 2] [--batch-size 32] [--repeats 3] [--n 10000] [--out FILE]

Rows in one process (see _common.py for what is measured and how): the kit transformer and all-MiniLM-L6-v2, each in
torch fp32 and exported with torch.onnx.export (the dynamo exporter: the TorchScript one has no aten::rms_norm) and run
with onnxruntime (CPUExecutionProvider, intra-op threads = --threads), with the same tokenization and batching as their
torch rows; the kit graph is ids, mask -> vector over an embedding table precomputed for the whole vocabulary. Each
onnx row records the max abs difference from the torch fp32 vectors (must be < 1e-4). --int8 adds onnxruntime's
quantize_dynamic of the same graphs (QInt8 weights, MatMul/Gemm only: the Linears; tables stay fp32); torch's int8 is
encode_int8.py. Needs `pip install -e '.[st,onnx]'`. Writes benchmarks/encode_onnx.json."""
import contextlib, io, logging, shutil, tempfile, time, warnings
from pathlib import Path
import numpy as np
import torch
import _common as C

ORT_INT8 = ('onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, op_types_to_quantize=[MatMul, Gemm]): int8 '
            'weights of the MatMuls with constant weights (the Linears), activations quantised at run time')

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
        lens, pad = C.padder([e.ids for e in getattr(tok, 'encode_batch_fast', tok.encode_batch)(texts)])
        order, out = np.argsort(lens, kind='stable'), np.empty((len(lens), d), np.float32)
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            ids, mask = pad(idx)
            out[idx] = sess.run(None, {'ids': ids.numpy(), 'mask': mask.numpy()})[0]
        return out
    return encode

def minilm_ort_encode(st):
    "encode(session, texts, batch_size) as sentence-transformers': longest first, each batch tokenized and padded."
    tok, max_len = st[0].tokenizer, st.max_seq_length
    def encode(sess, texts, bs):
        order, out = np.argsort([-len(t) for t in texts], kind='stable'), None
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
    rows, tmp = [], Path(tempfile.mkdtemp(prefix='encode_onnx-'))
    try:
        f32 = tmp/'model.onnx'
        try: export_s = onnx_export(graph, args, names, f32)
        except Exception as e:
            print(f"skipping {name} [onnx]: torch.onnx.export failed: {e}"); return []
        ref = ref_encode(texts[:4 * a.batch_size])
        variants = [(f32, None, None)]
        if a.int8:
            try: variants.append((tmp/'model-int8.onnx', C.INT8, onnx_int8(f32, tmp/'model-int8.onnx')))
            except Exception as e: print(f"skipping {name} [onnx int8]: onnxruntime quantize_dynamic failed: {e}")
        for path, quant, quant_s in variants:
            label = f"{name} [onnx{' int8' if quant else ''}]"
            row, sess = C.bench(label, lambda: ort_session(path, a.threads), encode, lambda _: n_params, texts, test,
                                a.batch_size, a.repeats)
            diff = float(np.abs(encode(sess, texts[:4 * a.batch_size], a.batch_size) - ref).max())
            if quant is None and diff >= 1e-4: print(f"warning: {label} differs from torch fp32 by {diff:.2e} (>= 1e-4)")
            size = sum(p.stat().st_size for p in tmp.iterdir() if p.name.startswith(path.name))
            rows.append(dict(model=row.pop('model')) | head | dict(
                quantized=quant, runtime=f'onnxruntime {ort.__version__} (CPUExecutionProvider)') | row | dict(
                max_abs_diff_vs_torch_fp32=diff, onnx_equal_to_torch=(diff < 1e-4) if quant is None else None,
                onnx_mb=round(size / 2**20, 1), export_s=round(export_s, 1)) | (dict(
                quantization=ORT_INT8, quantize_s=round(quant_s, 1)) if quant else {}) | tail)
            del sess
    finally: shutil.rmtree(tmp, ignore_errors=True)
    return rows

def main(argv=None) -> dict:
    ap = C.parser(__doc__, 'encode_onnx.json')
    ap.add_argument('--int8', action='store_true', help="also onnxruntime's dynamic int8 of the same graphs")
    a = ap.parse_args(argv)
    for mod in ('onnx', 'onnxruntime', 'onnxscript'): C.need(mod, 'onnx')
    rep = C.Report(a, __doc__.split('\n')[0])
    run, mini = C.kit_folder(a.run, '--run'), C.minilm_folder()
    import onnx, onnxruntime, onnxscript
    from sentence_transformers import __version__ as st_version
    texts, test = C.sentences(rep.cfg, a.n), C.stsb_test(rep.cfg)

    row, model = C.kit_row(run, texts, test, a)
    rows, tok = [row], model.tokenizer
    head = {k: row[k] for k in ('kind', 'n_layers', 'd_model')}
    tail = {k: row[k] for k in ('embedding', 'emb_norm', 'pooler', 'run', 'train_data', 'steps')}
    _, pad = C.padder([e.ids for e in getattr(tok, 'encode_batch_fast', tok.encode_batch)(texts[:4])])
    rows += onnx_rows(f'fourier_nb {run.name}', head, tail, KitGraph(model), pad(np.arange(4)), ['ids', 'mask'],
                      kit_ort_encode(tok, model.cfg.d_model), lambda s: model.encode(s, batch_size=a.batch_size),
                      row['params'], texts, test, a)
    del model

    row, model = C.bench('all-MiniLM-L6-v2', lambda: C.minilm(mini), C.st_encode, C.n_params, texts, test, a.batch_size,
                         a.repeats)
    rows.append(C.minilm_row(row, model, mini))
    r = rows[-1]
    example = model[0].tokenizer(texts[:4], padding=True, truncation=True, max_length=model.max_seq_length,
                                 return_tensors='pt')
    names = ['input_ids', 'attention_mask', 'token_type_ids']
    rows += onnx_rows('all-MiniLM-L6-v2', {k: r[k] for k in ('kind', 'n_layers', 'd_model')},
                      {k: r[k] for k in ('folder', 'package')}, MiniLMGraph(model), tuple(example[k] for k in names),
                      names, minilm_ort_encode(model), lambda s: C.st_encode(model, s, a.batch_size), r['params'],
                      texts, test, a)
    del model
    t, m, o = 'kit transformer', 'sentence-transformers', 'onnxruntime'
    ratios = {'transformer onnx fp32 / transformer torch fp32': C.ratio(C.speed(rows, t, runtime=o), C.speed(rows, t)),
              'MiniLM onnx fp32 / MiniLM torch fp32': C.ratio(C.speed(rows, m, runtime=o), C.speed(rows, m)),
              'transformer onnx fp32 / MiniLM fp32': C.ratio(C.speed(rows, t, runtime=o), C.speed(rows, m)),
              'transformer onnx fp32 / MiniLM onnx fp32': C.ratio(C.speed(rows, t, runtime=o), C.speed(rows, m, runtime=o))}
    if a.int8: ratios |= {
        'transformer onnx int8 / MiniLM fp32': C.ratio(C.speed(rows, t, C.INT8, o), C.speed(rows, m)),
        'transformer onnx int8 / MiniLM onnx int8': C.ratio(C.speed(rows, t, C.INT8, o), C.speed(rows, m, C.INT8, o))}
    deploy = dict(onnx=onnx.__version__, onnxruntime=onnxruntime.__version__, onnxscript=onnxscript.__version__)
    out = rep.write(rows, sentence_transformers=st_version, int8=a.int8, deploy=deploy, ratios=ratios)
    for r in rows:
        if r.get('onnx_equal_to_torch') is not None:
            print(f"{r['model']}: max abs diff vs torch fp32 {r['max_abs_diff_vs_torch_fp32']:.1e} "
                  f"({'< 1e-4: equal' if r['onnx_equal_to_torch'] else '>= 1e-4: NOT equal'})")
    return out

if __name__ == '__main__': main()
