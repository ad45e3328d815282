#!/usr/bin/env python3
"""Run SCALE-Sim v3 (pip package `scalesim`) on the GEMM shapes of einsim's parity table and record what it
measures: compute cycles (no DRAM stalls: CALC bandwidth mode, so the memory system is sized to never stall),
SRAM reads of each operand, SRAM writes of the output, and SCALE-Sim's own wall time per GEMM.

Usage:  pip install scalesim 'numpy<2.3'
        python3 reports/scalesim/run_scalesim.py > reports/scalesim/scalesim.csv

SCALE-Sim's own code is not part of einsim; this script only drives it. Shapes are (M, N, K): an M x K input
times a K x N filter matrix, SCALE-Sim's GEMM topology convention (Layer, M, N, K).
"""
import contextlib, datetime, io, os, sys, tempfile, time
from importlib.metadata import version

from scalesim.scale_sim import scalesim

# (name, M, N, K)
SHAPES = [
    ("square", 256, 256, 256),
    ("tall", 1024, 64, 128),
    ("wide", 64, 1024, 128),
    ("deep_k", 128, 128, 1024),
    ("shallow_k", 256, 256, 16),
    ("ragged", 200, 100, 50),
    ("large", 512, 512, 512),
]
ARRAYS = [32, 128]
DATAFLOWS = ["os", "ws"]

CFG = """[general]
run_name = {name}

[architecture_presets]
ArrayHeight:    {rows}
ArrayWidth:     {cols}
IfmapSramSzkB:  65536
FilterSramSzkB: 65536
OfmapSramSzkB:  65536
IfmapOffset:    0
FilterOffset:   10000000
OfmapOffset:    20000000
Bandwidth : 10
Dataflow : {df}
MemoryBanks: 1
ReadRequestBuffer: 32
WriteRequestBuffer: 32

[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: 10
IfmapSRAMBankNum: 10
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: 10
FilterSRAMBankNum: 10
FilterSRAMBankPort: 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth: CALC
UseRamulatorTrace: False
"""


def run_one(tmp, shape, arr, df):
    name, m, n, k = shape
    tag = f"{name}_{arr}_{df}"
    cfg = os.path.join(tmp, tag + ".cfg")
    topo = os.path.join(tmp, tag + ".csv")
    with open(cfg, "w") as f:
        f.write(CFG.format(name=tag, rows=arr, cols=arr, df=df))
    with open(topo, "w") as f:
        f.write("Layer, M, N, K,\n")
        f.write(f"{tag}, {m}, {n}, {k},\n")
    layout = os.path.join(tmp, "layout.csv")  # custom layouts are off; SCALE-Sim still opens the file
    with open(layout, "w") as f:
        f.write("Layer name,\n")
    out = os.path.join(tmp, "out")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo, layout=layout,
                     input_type_gemm=True)
        s.run_scale(top_path=out)
    wall = time.perf_counter() - t0
    layer = s.runner.single_layer_sim_object_list[0]
    return dict(
        shape=name, M=m, N=n, K=k, array=arr, dataflow=df,
        cycles=layer.total_cycles, stall_cycles=layer.stall_cycles,
        ifmap_sram_reads=layer.ifmap_sram_reads, filter_sram_reads=layer.filter_sram_reads,
        ofmap_sram_writes=layer.ofmap_sram_writes, wall_s=f"{wall:.3f}",
    )


def main():
    cols = ["shape", "M", "N", "K", "array", "dataflow", "cycles", "stall_cycles", "ifmap_sram_reads",
            "filter_sram_reads", "ofmap_sram_writes", "wall_s"]
    print(f"# SCALE-Sim {version('scalesim')} (pip), numpy {version('numpy')}, "
          f"measured {datetime.date.today().isoformat()} by reports/scalesim/run_scalesim.py; "
          f"CALC bandwidth (no DRAM stalls), 1-byte words")
    print(",".join(cols))
    only = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp:
        for shape in SHAPES:
            if only and shape[0] not in only:
                continue
            for arr in ARRAYS:
                for df in DATAFLOWS:
                    r = run_one(tmp, shape, arr, df)
                    print(",".join(str(r[c]) for c in cols), flush=True)


if __name__ == "__main__":
    main()
