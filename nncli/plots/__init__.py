"""Pictures of runs, weights and mistakes: what to draw (pictures.py), drawn by matplotlib into a file (draw.py) or in Unicode characters for a terminal (text.py)."""
