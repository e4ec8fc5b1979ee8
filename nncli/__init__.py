"""nncli: train fully-connected neural networks on CSV data from YAML configs."""

__version__ = "0.1.0"
