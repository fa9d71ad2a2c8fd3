#!/usr/bin/env bash
# Record the versions of the current (tested) virtual environment in constraints.txt.
# Run inside the venv that just passed the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  sed -n '1,/^# Known-bad/p' constraints.txt
  pip freeze --exclude-editable | grep -v -i -E '^(-e |bgswap)'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pinned packages"
