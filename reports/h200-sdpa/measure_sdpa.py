"""Forward TFLOP/s of PyTorch's scaled-dot-product attention on the GPU at hand, on `einsim reproduce fa4`'s grid.

Issue 13, item 5: measure a real Hopper (an H200 where one is lent) so einsim's FA3/FA2 predictions for it
(`reports/fa4/runs.csv`, rows `h200,fa3` and `h100,fa2`: the same GH100 die, gpus.md §4) have a measurement beside
them. Two SDPA backends: FLASH_ATTENTION (PyTorch's in-tree FlashAttention-2 kernels) and CUDNN_ATTENTION
(cuDNN's fused attention, Hopper-specific).

Grid (as src/gpu/fa4_targets.ron's plan): sequence 1K..32K with 32K tokens in all (batch = 32768 / seq), hidden
2048 (heads = 2048 / d), head dims 64, 128, 256, causal and not, FP16 (the FA2/FA3 papers' data type; einsim's
fa2/fa3 kernels are fp16). FLOPs = 4·s²·d·h·b, halved for causal (gpus.md conventions).

Timing: CUDA events around each call after 3 warm-up calls; the median of 10. Run it on the device machine as
    python3 reports/h200-sdpa/measure_sdpa.py "$OUT/sdpa.csv"
It takes about a minute. Nothing here is read by einsim: the table is a comparison, never an input.
"""

import datetime
import statistics
import subprocess
import sys
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SEQS = [1024, 2048, 4096, 8192, 16384, 32768]
DIMS = [64, 128, 256]
TOKENS = 32768
HIDDEN = 2048
WARMUP = 3
ITERS = 10
BACKENDS = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)]


def header():
    """Where and with what the numbers were taken, as comment lines."""
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        smi = f"unavailable ({type(e).__name__})"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none"
    return [
        f"# date (UTC): {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"# gpu: {torch.cuda.get_device_name()} ({torch.cuda.get_device_properties(0).multi_processor_count} SMs)",
        f"# nvidia-smi (name, driver, max SM clock, power limit): {smi}",
        f"# torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {cudnn}",
        f"# fp16; {TOKENS} tokens, hidden {HIDDEN}; median of {ITERS} after {WARMUP} warm-ups (CUDA events)",
    ]


def time_ms(fn):
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(ITERS):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main(path):
    # The header and each row are written as they come, so a run cut short keeps what it measured.
    with open(path, "w") as out:
        for line in header() + ["backend,seq,d,causal,batch,heads,ms,tflops,error"]:
            print(line, file=out, flush=True)
        for seq in SEQS:
            for d in DIMS:
                batch, heads = TOKENS // seq, HIDDEN // d
                q, k, v = (
                    torch.randn(batch, heads, seq, d, device="cuda", dtype=torch.float16) for _ in range(3)
                )
                for causal in (False, True):
                    flops = 4 * seq * seq * d * heads * batch / (2 if causal else 1)
                    for name, backend in BACKENDS:
                        key = f"{name},{seq},{d},{int(causal)},{batch},{heads}"
                        # PyTorch says why a backend refuses a shape in a warning, and raises a generic error.
                        with warnings.catch_warnings(record=True) as caught:
                            warnings.simplefilter("always")
                            try:
                                with sdpa_kernel([backend]):
                                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))
                                row = f"{key},{ms:.4f},{flops / ms / 1e9:.1f},"
                            except Exception as e:  # a backend that refuses a shape: recorded, not fatal
                                why = " / ".join([str(w.message) for w in caught] + [str(e) or type(e).__name__])
                                row = f"{key},,," + " ".join(why.split()).replace(",", ";")[:300]
                        print(row, file=out, flush=True)
                        print(row, flush=True)
                del q, k, v
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sdpa.csv")
