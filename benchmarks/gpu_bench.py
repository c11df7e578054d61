"""Nets on a GPU: patches/s in fp32 and bf16, and the share of the bf16 peak.

    python benchmarks/gpu_bench.py [--config razn] [--batch 64] [--json out.json]

For each net of the configuration (f_k, g_k, or the baseline's net), times
forward passes on random patches (inference mode, channels-last) in fp32
and under bf16 autocast, and turns the bf16 rate into TFLOP/s with the
FLOPs `torch.utils.flop_counter` counts for one patch. The peak is the
card's dense bf16 tensor-core figure (H100/H200 SXM: 989 TFLOP/s).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

DENSE_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}


def peak_for(name: str) -> float | None:
    for key, tflops in DENSE_BF16_TFLOPS.items():
        if key in name:
            return tflops
    return None


def flops_per_patch(net, size: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.zeros(1, 3, size, size, device="cuda"))
    return counter.get_total_flops()


def rate(net, x, dtype, seconds: float = 3.0) -> float:
    with torch.inference_mode(), torch.autocast("cuda", dtype, enabled=dtype != torch.float32):
        for _ in range(3):
            net(x)
        torch.cuda.synchronize()
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            net(x)
            count += x.shape[0]
        torch.cuda.synchronize()
    return count / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="razn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return 1
    from razn.models import build_model

    torch.backends.cudnn.benchmark = True
    model = build_model(args.config).cuda().eval().to(memory_format=torch.channels_last)
    size = model.config.patch_size
    name = torch.cuda.get_device_name()
    peak = peak_for(name)
    nets = (
        [(f"f_{k}", n) for k, n in enumerate(model.segmenters)]
        + [(f"g_{k + 1}", n) for k, n in enumerate(model.policies)]
        if hasattr(model, "segmenters")
        else [("net", model.net)]
    )
    x = torch.rand(args.batch, 3, size, size, device="cuda").contiguous(
        memory_format=torch.channels_last
    )
    rows = []
    print(f"{name}, {args.config}, {size} px patches, batch {args.batch}")
    print("| net | GFLOP/patch | fp32 patches/s | bf16 patches/s | bf16 TFLOP/s | of bf16 peak |")
    print("|---|---|---|---|---|---|")
    for label, net in nets:
        flops = flops_per_patch(net, size)
        fp32 = rate(net, x, torch.float32)
        bf16 = rate(net, x, torch.bfloat16)
        tflops = bf16 * flops / 1e12
        share = f"{tflops / peak:.1%}" if peak else "?"
        rows.append(
            {"net": label, "gflop": flops / 1e9, "fp32": fp32, "bf16": bf16, "tflops": tflops}
        )
        print(
            f"| {label} | {flops / 1e9:.1f} | {fp32:.0f} | {bf16:.0f} | {tflops:.0f} | {share} |"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"device": name, "config": args.config, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
