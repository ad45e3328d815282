#!/usr/bin/env python3
"""Writes gpt2-medium-synthetic.csv: a synthetic SpAtten generation trace for GPT-2 medium (24 layers, 16 heads),
32 generated tokens after a 1024-token context. No model was run: the rows follow the summary statistics the
reference gives for the [C] gpt2-medium trace (einsim reference flat_spatten.md §2.1, §2.5), with deterministic
choices where it gives none:
- cascade token pruning: the front 15% of layers (0-3) keep every token; layers 4-23 keep a fraction falling
  linearly from 0.75 to 0.146, so the mean K/L over the 24 layers is about 0.54 (reference: K/L = 0.54);
- local V pruning: values = round(0.30 * keys) (reference: V/K = 0.30);
- cascade head pruning: heads 0-15 in layers 0-15, 13 heads in layers 16-21, 10 in layers 22-23 (reference:
  16 -> 13 -> 10), the highest-numbered heads pruned;
- progressive quantization: 8-bit MSBs for K and V (the 8+4 split of [P] §III-E; the [C] medium trace is static
  12/8-bit, so this departs from it on purpose, to exercise the refetch); a head refetches its 4 LSBs when a
  fixed hash of (step, layer, head) falls in the lowest 6 of 100 buckets ([P]: 5.9% of inputs need the LSBs).
Run: python3 make_gpt2_medium_synthetic.py > gpt2-medium-synthetic.csv
"""

LAYERS, HEADS, STEPS, CONTEXT = 24, 16, 32, 1024


def keep(layer):
    if layer < 4:
        return 1.0
    return 0.75 - (0.75 - 0.146) * (layer - 4) / 19


def heads(layer):
    return 16 if layer < 16 else 13 if layer < 22 else 10


def refetch(step, layer, head):
    h = (step * 1_000_003 + layer * 7919 + head * 104_729) * 2_654_435_761 % 2**32
    return int(h % 100 < 6)


print("# Synthetic SpAtten generation trace, GPT-2 medium, 32 tokens after 1024: see make_gpt2_medium_synthetic.py")
print("step,layer,head,keys,values,k_bits,v_bits,lsb_refetch")
for step in range(STEPS):
    kv_len = CONTEXT + step
    for layer in range(LAYERS):
        keys = max(1, int(kv_len * keep(layer)))
        values = max(1, round(0.30 * keys))
        for head in range(heads(layer)):
            print(f"{step},{layer},{head},{keys},{values},8,8,{refetch(step, layer, head)}")
