"""What lands on disk: safe .npz archives, the model file, checkpoints, run files, atomic writes."""
