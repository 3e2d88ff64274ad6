"""Real score architectures, exported from their authors' PyTorch model code at small width with
random weights (fixed seed), with PyTorch's outputs on a fixed batch: anneal's `score` command
must reproduce them (host/tests/network.rs, `real_architectures_match_pytorch`).

    git clone https://github.com/ermongroup/ncsnv2            /tmp/ref/ncsnv2     # 1bcea03
    git clone https://github.com/yang-song/score_sde_pytorch  /tmp/ref/score_sde  # cb1f359
    pip install torch onnx onnxscript ml_collections
    python3 tests/onnx/make_real_nets.py /tmp/ref/ncsnv2 /tmp/ref/score_sde

Writes, for NAME in ncsnv2 and ncsnpp: NAME.onnx, NAME.json (conventions), NAME-x.npy (the
batch: 4 images of 1×16×16 in [0, 1]) and NAME-y-S.npy (PyTorch's score at σ = S, float32,
computed in float64 by the same module).

- NCSNv2 (models/ncsnv2.py, `NCSNv2`): ngf 8, 1×16×16, 10 geometric σ's from 5 to 0.01, ELU,
  InstanceNorm++; forward(x, y) takes the level index y (int64) and returns the score (it divides
  by σ_y). The legacy exporter fails on its refine block ("ONNX export of instance_norm for
  unknown channel size"); the dynamo exporter (opset 18) exports it. Its per-node debug metadata
  (stack traces with absolute paths, most of the file) is stripped.
- NCSN++ (models/ncsnpp.py, `NCSNpp`, VE continuous): nf 16, ch_mult (1, 2), one res block,
  attention at 8×8, BigGAN blocks with FIR, Fourier embedding of ln σ, scale_by_sigma; forward(x,
  σ) returns the score. Legacy exporter, opset 17. score_sde's `op` package compiles a CUDA
  extension at import: `torch.utils.cpp_extension.load` is replaced by a stub so that the CPU
  path (`upfirdn2d_native`, pure PyTorch) is used, as on any CPU.
"""

import json
import pathlib
import sys
import types

import numpy as np
import torch

OUT = pathlib.Path(__file__).resolve().parent


def strip(path):
    import onnx

    m = onnx.load(str(path))
    for node in m.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    for f in m.functions:
        for node in f.node:
            node.doc_string = ""
            del node.metadata_props[:]
    m.doc_string = ""
    del m.metadata_props[:]
    onnx.save(m, str(path))


def batch():
    g = torch.Generator().manual_seed(11)
    return torch.rand(4, 1, 16, 16, generator=g)


def save_pair(name, x, outputs):
    np.save(OUT / f"{name}-x.npy", x.numpy().astype(np.float32))
    for s, y in outputs.items():
        np.save(OUT / f"{name}-y-{s}.npy", y.astype(np.float32))


def ncsnv2(repo):
    sys.path.insert(0, str(repo))
    from models.ncsnv2 import NCSNv2

    cfg = types.SimpleNamespace(
        data=types.SimpleNamespace(logit_transform=False, rescaled=False, channels=1, image_size=16),
        model=types.SimpleNamespace(ngf=8, num_classes=10, sigma_dist="geometric", sigma_begin=5.0,
                                    sigma_end=0.01, normalization="InstanceNorm++", nonlinearity="elu"),
        device=torch.device("cpu"),
    )
    torch.manual_seed(0)
    net = NCSNv2(cfg).eval()
    sigmas = net.sigmas.double().numpy()
    x = batch()
    outs = {}
    with torch.no_grad():
        net64 = NCSNv2(cfg).eval()
        net64.load_state_dict(net.state_dict())
        net64 = net64.double()
        torch.set_default_dtype(torch.float64)  # the refine block makes tensors of the default type
        for level in [0, 9]:
            y = torch.full((4,), level, dtype=torch.int64)
            outs[f"{sigmas[level]:g}"] = net64(x.double(), y).numpy()
        torch.set_default_dtype(torch.float32)
    path = OUT / "ncsnv2.onnx"
    y = torch.zeros(4, dtype=torch.int64)
    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(net, (x, y), str(path), input_names=["x", "y"], output_names=["score"],
                      dynamic_shapes={"x": {0: batch_dim}, "y": {0: batch_dim}}, dynamo=True,
                      opset_version=18, external_data=False)
    strip(path)
    (OUT / "ncsnv2.json").write_text(json.dumps({
        "input": "level", "output": "score", "sigmas": sigmas.tolist(), "range": [0.0, 1.0],
        "description": "NCSNv2 (ermongroup/ncsnv2 1bcea03), ngf 8, 1x16x16, random weights (seed 0)",
    }, indent=1) + "\n")
    save_pair("ncsnv2", x, outs)
    print("wrote", path.name, path.stat().st_size, "bytes")
    sys.path.remove(str(repo))
    for k in [k for k in sys.modules if k == "models" or k.startswith("models.")]:
        del sys.modules[k]


def ncsnpp(repo):
    import torch.utils.cpp_extension as ext

    ext.load = lambda *a, **k: None  # the CUDA ops are not built; the CPU path is pure PyTorch
    sys.path.insert(0, str(repo))
    from configs.default_cifar10_configs import get_default_configs
    from models import up_or_down_sampling
    from models.ncsnpp import NCSNpp

    cfg = get_default_configs()
    cfg.device = torch.device("cpu")
    d, m = cfg.data, cfg.model
    d.image_size, d.num_channels, d.centered = 16, 1, False
    m.name, m.scale_by_sigma, m.normalization, m.nonlinearity = "ncsnpp", True, "GroupNorm", "swish"
    m.nf, m.ch_mult, m.num_res_blocks, m.attn_resolutions = 16, (1, 2), 1, (8,)
    m.resamp_with_conv, m.conditional, m.fir, m.fir_kernel = True, True, True, [1, 3, 3, 1]
    m.skip_rescale, m.resblock_type, m.progressive = True, "biggan", "none"
    m.progressive_input, m.progressive_combine, m.attention_type = "residual", "sum", "ddpm"
    m.init_scale, m.fourier_scale, m.conv_size, m.dropout = 0.0, 16, 3, 0.0
    m.embedding_type, m.sigma_min, m.sigma_max = "fourier", 0.01, 50
    torch.manual_seed(0)
    net = NCSNpp(cfg).eval()
    # init_scale 0 zeroes the last convolutions: give every weight a random value instead.
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    x = batch()
    outs = {}
    with torch.no_grad():
        torch.set_default_dtype(torch.float64)  # FIR kernels are made as tensors of the default type
        net64 = NCSNpp(cfg).eval()
        net64.load_state_dict(net.state_dict())
        net64 = net64.double()
        # The FIR kernels are made float32 from NumPy: cast them to the input's type (f64 pass only).
        fir = up_or_down_sampling.upfirdn2d
        up_or_down_sampling.upfirdn2d = lambda x, k, **kw: fir(x, k.to(x.dtype), **kw)
        for s in [0.05, 5.0]:
            outs[f"{s:g}"] = net64(x.double(), torch.full((4,), s, dtype=torch.float64)).numpy()
        up_or_down_sampling.upfirdn2d = fir
        torch.set_default_dtype(torch.float32)
    path = OUT / "ncsnpp.onnx"
    t = torch.full((4,), 0.5)
    torch.onnx.export(net, (x, t), str(path), input_names=["x", "sigma"], output_names=["score"],
                      dynamic_axes={"x": {0: "batch"}, "sigma": {0: "batch"}, "score": {0: "batch"}},
                      opset_version=17, dynamo=False)
    strip(path)
    (OUT / "ncsnpp.json").write_text(json.dumps({
        "input": "sigma", "output": "score", "range": [0.0, 1.0], "trained_sigma": [0.01, 50.0],
        "description": "NCSN++ (yang-song/score_sde_pytorch cb1f359), nf 16, 1x16x16, random weights",
    }, indent=1) + "\n")
    save_pair("ncsnpp", x, outs)
    print("wrote", path.name, path.stat().st_size, "bytes")


if __name__ == "__main__":
    ncsnv2(pathlib.Path(sys.argv[1]).resolve())
    ncsnpp(pathlib.Path(sys.argv[2]).resolve())
