"""The pieces of scripts/build_demo_model.py (see its docstring for what is built and how)."""

import os

# Rayon thread count changes the BPE trainer's work split; pin it so the
# tokenizer is reproducible. Must be set before `tokenizers` is imported.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
