"""``python -m training.export``: see ``training.export``."""
from training.export import main

main()
