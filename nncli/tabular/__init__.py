"""Reading data: open any tabular source, parse it exactly, and build the dataset a config asks for."""
