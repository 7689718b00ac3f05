"""fp16lint: find float16 hazards in PyTorch code before they become NaNs.

The static linter never imports torch and never imports or runs the code it analyses.
"""

__version__ = "0.1.0"
