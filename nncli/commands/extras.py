"""How to install an optional extra, in the one line a command prints when it is missing.

"nncli" on PyPI is another project (a Nextcloud notes client): `pip install "nncli[plot]"` would
replace this nncli with it. So the hint names the extra's own packages, as pyproject.toml pins
them (a test keeps the two the same), and how to add the extra to a clone.
"""

from __future__ import annotations

PACKAGES = {
    "plot": ('"matplotlib>=3.8"',),
    "onnx": ('"onnx>=1.15"', '"onnxruntime>=1.17"'),
    "ray": ('"ray>=2.9"',),
}


def install_hint(extra: str) -> str:
    """`pip install "matplotlib>=3.8" (the plot extra; in a clone: pip install -e ".[plot]")`."""
    return f'pip install {" ".join(PACKAGES[extra])} (the {extra} extra; in a clone: pip install -e ".[{extra}]")'
