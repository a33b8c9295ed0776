from flash_attn import _unavailable as index_first_axis  # noqa: F401
from flash_attn import _unavailable as pad_input  # noqa: F401
from flash_attn import _unavailable as rearrange  # noqa: F401
from flash_attn import _unavailable as unpad_input  # noqa: F401
