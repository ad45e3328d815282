#!/usr/bin/env bash
# Re-runs the CACTI 7 calculations behind the global-buffer entries of ../fusemax-45nm.ron.
#
# CACTI is not part of einsim: this script fetches the CACTI 7 sources bundled in the `hwcomponents-cacti` wheel
# (PyPI, version 1.0.40, the Accelergy project's CACTI plug-in), builds them in a scratch directory with the
# machine's C++ compiler, and runs one configuration per buffer on that plug-in's default parameter template
# (itrs-lstp cells and periphery, UCA, 300 K) with einsim's sizes appended. Nothing is written into the repository.
#
#   bash arch/energy/cacti/run.sh            # prints one line per configuration
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps --python-version 3.12 --only-binary=:all: \
    hwcomponents-cacti==1.0.40 -d "$work" >/dev/null
python3 -m zipfile -e "$work"/hwcomponents_cacti-1.0.40-py3-none-any.whl "$work/whl"
src="$work/whl/hwcomponents_cacti"
# The wheel ships objects built against a newer glibc; build from source.
rm -rf "$src/cacti/obj_dbg" "$src/cacti/obj_opt" "$src/cacti/cacti"
make -C "$src/cacti" opt -j"$(nproc)" >"$work/build.log" 2>&1

# name, bytes, block (access) bytes, UCA banks: the artifact's buffer geometries ([R] fusemax.md §2.1),
# plus the stale 64-bit-wide 32 MB config whose ERT the artifact does have, as a calibration point.
configs=(
    "stale-32MB-64bit 33554432 8 4"
    "fusemax-16MB 16777216 512 32"
    "flat-32MB 33554432 512 4"
    "flat-edge-512KB 524288 512 4"
)
printf '%-18s %12s %12s %12s\n' config "read (pJ)" "write (pJ)" "area (mm2)"
for c in "${configs[@]}"; do
    read -r name bytes block banks <<<"$c"
    cfg="$work/$name.cfg"
    { cat "$src/default_cfg.cfg"; echo; cat <<CFG
-size (bytes) $bytes
-read-write port  1
-block size (bytes) $block
-technology (u) 0.045
-output/input bus width  $((block * 8))
-UCA bank $banks
-cache type "ram"
-tag size (b) 0
-associativity 1
CFG
    } >"$cfg"
    (cd "$src/cacti" && ./cacti -infile "$cfg" >"$work/$name.log" 2>&1)
    rd=$(grep -m1 "Total dynamic read energy per access (nJ)" "$work/$name.log" | awk '{print $NF * 1000}')
    wr=$(grep -m1 "Total dynamic write energy per access (nJ)" "$work/$name.log" | awk '{print $NF * 1000}')
    area=$(grep -m1 "Data array: Area (mm2)" "$work/$name.log" | awk '{print $NF}')
    printf '%-18s %12s %12s %12s\n' "$name" "$rd" "$wr" "$area"
done
