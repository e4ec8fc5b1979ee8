"""The numerical core: pure NumPy, no I/O, no configuration objects.

Everything here takes plain values (sizes, names, arrays, a ``np.random.Generator``)
so that it can be tested, and reused, without the command-line layer.
"""
