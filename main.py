"""Entry point: ``python main.py`` opens the GUI, ``python main.py --no-gui ...`` runs headless."""
import sys

from app.cli import main

if __name__ == "__main__":
    sys.exit(main())
