"""Entry point: ``python main.py`` opens the GUI, ``python main.py --no-gui ...`` runs headless."""
import signal
import sys


def _stop_while_starting(signum, _frame):
    """Ctrl+C or SIGTERM before the app's own handlers are in place (still importing): exit quietly."""
    sys.exit(128 + signum)


for _sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(_sig, _stop_while_starting)

try:
    from bgswap.app.cli import main
except ModuleNotFoundError as exc:      # a checkout that was never installed
    if exc.name not in ("bgswap", "bgswap.app", "bgswap.app.cli"):
        raise
    sys.exit("bgswap is not installed in this Python: run  pip install -c constraints.txt .  "
             "(or -e . for development) in the repository first")

if __name__ == "__main__":
    sys.exit(main())
