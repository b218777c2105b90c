"""The values a choice setting may take, in one place: the flags offer them and the
stages that act on them import them from here."""

PLL_METRICS = ("original", "within_word_l2r")  # minicons' PLL variants
REDUCTIONS = ("mean", "sum")  # PLL per scored token, or summed
BACKENDS = ("engine", "minicons")
DTYPES = ("auto", "fp32", "bf16", "fp16")
DTYPE_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}  # PyTorch's names
LIRA_STATISTICS = ("pll", "logit")
SPLITTERS = ("lines", "rules")


def dtype_name(value: str) -> str:
    """The setting's own name for a dtype, PyTorch's names accepted (``float32`` -> ``fp32``)."""
    return DTYPE_ALIASES.get(value, value)
