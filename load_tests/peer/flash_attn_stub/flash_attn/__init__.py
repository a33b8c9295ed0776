"""Stand-in for flash_attn so OpenRLHF's reward server imports on a machine without CUDA.

OpenRLHF imports these names at module load but calls them only for sample packing, which the benchmark leaves
off; calling one is an error, never a silent fallback.
"""


def _unavailable(*args, **kwargs):
    raise NotImplementedError("flash_attn is a stand-in here: run OpenRLHF's server with packing off")
