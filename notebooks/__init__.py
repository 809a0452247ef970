"""The research notebooks; ``python -m notebooks.run`` re-executes them and stores their outputs."""
