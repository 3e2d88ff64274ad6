"""The PyTorch CPU reference of `anneal bench --score MODEL`: the same network, the same plan.

Usage: python3 torch_network.py MODEL.onnx CASE.json REPEATS [cuda]   (CASE.json as written by anneal)

With `cuda` the same loop and forward pass run on the GPU instead (float32, TF32 off, timed with
the device synchronised), under the keys whole_cuda and torch_forward_cuda.

- whole: seconds of a whole run (median of REPEATS after one warm-up) at 1 and 2 threads: n
  samples from N(0.5, σ_1² I), then per step s = net(x, σ), fresh normal noise when the step
  draws it, x ← c_x x + c_s s + c_n ξ with anneal's coefficients (CAS, εc = 2, 100 levels and the
  final denoising step by default); torch.inference_mode, float32.
- torch_forward / ort_forward: one forward pass at batch 256 in PyTorch and onnxruntime.

PyTorch runs the shipped digits network only: its module is `ScoreNet` of
host/data/train_digits.py with the weights read from MODEL.onnx's initializers (so both sides run
the same numbers). For any other model only onnxruntime's forward pass is timed.
Prints one JSON object.
"""
import json
import pathlib
import sys
import time

import numpy as np


def median_time(f, repeats):
    f()
    t = []
    for _ in range(repeats):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    t.sort()
    return t[len(t) // 2]


def torch_model(path):
    import onnx
    import torch
    from onnx import numpy_helper

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "data"))
    from train_digits import ScoreNet

    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(path)).graph.initializer}
    net = ScoreNet().eval()
    state = net.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise SystemExit(f"{path} is not the shipped digits network (no {missing[0]})")
    net.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in state})
    return net


def run_cuda(path, case, repeats):
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    net = torch_model(path).to(dev)
    d, n = case["dim"], case["n"]
    gen = torch.Generator(device=dev).manual_seed(0)

    def whole():
        with torch.inference_mode():
            x = 0.5 + case["sigma1"] * torch.randn(n, d, generator=gen, device=dev)
            for sigma, cx, cs, cn, noise in case["steps"]:
                s = net(x, torch.full((n,), sigma, device=dev))
                if noise:
                    x = cx * x + cs * s + cn * torch.randn(n, d, generator=gen, device=dev)
                else:
                    x = cx * x + cs * s
            torch.cuda.synchronize()
            return x

    xt = torch.full((256, d), 0.5, device=dev)
    st = torch.full((256,), 1.0, device=dev)

    def fwd():
        with torch.inference_mode():
            net(xt, st)
            torch.cuda.synchronize()

    out = {
        "whole_cuda": median_time(whole, repeats),
        "torch_forward_cuda": median_time(fwd, repeats * 3),
        "versions": f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(0)}",
    }
    print(json.dumps(out))


def main():
    path, case, repeats = pathlib.Path(sys.argv[1]), json.load(open(sys.argv[2])), int(sys.argv[3])
    if len(sys.argv) > 4 and sys.argv[4] == "cuda":
        return run_cuda(path, case, repeats)
    out = {"whole": {}, "torch_forward": {}, "ort_forward": {}, "versions": ""}
    versions = []
    d, n = case["dim"], case["n"]
    x256 = np.full((256, d), 0.5, dtype=np.float32)
    sig = np.full((256,), 1.0, dtype=np.float32)
    try:
        import torch

        net = torch_model(path)
        versions.append(f"PyTorch {torch.__version__}")
        steps = case["steps"]
        gen = torch.Generator().manual_seed(0)

        def whole():
            with torch.inference_mode():
                x = 0.5 + case["sigma1"] * torch.randn(n, d, generator=gen)
                for sigma, cx, cs, cn, noise in steps:
                    s = net(x, torch.full((n,), sigma))
                    if noise:
                        x = cx * x + cs * s + cn * torch.randn(n, d, generator=gen)
                    else:
                        x = cx * x + cs * s
                return x

        xt, st = torch.from_numpy(x256), torch.from_numpy(sig)
        for threads in [1, 2]:
            torch.set_num_threads(threads)
            out["whole"][str(threads)] = median_time(whole, repeats)
            with torch.inference_mode():
                out["torch_forward"][str(threads)] = median_time(lambda: net(xt, st), repeats * 3)
    except (ImportError, SystemExit) as e:
        print(f"PyTorch not run: {e}", file=sys.stderr)
    try:
        import onnxruntime as ort

        versions.append(f"onnxruntime {ort.__version__}")
        for threads in [1, 2]:
            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            names = [i.name for i in sess.get_inputs()]
            feed = {names[0]: x256}
            if len(names) > 1:
                feed[names[1]] = sig
            out["ort_forward"][str(threads)] = median_time(lambda: sess.run(None, feed), repeats * 3)
    except ImportError as e:
        print(f"onnxruntime not run: {e}", file=sys.stderr)
    out["versions"] = ", ".join(versions)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
