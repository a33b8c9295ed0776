from flash_attn import _unavailable as all_gather  # noqa: F401
