#!/usr/bin/env bash
# Screenshot of the real window under Xvfb: demo source, a bundled background applied.
#   apt-get install xvfb imagemagick libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
#       libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libxcb-randr0
#   bash tools/screenshot.sh [docs/screenshot.png] [background]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/screenshot.png}
bg=${2:-assets/backgrounds/aurora.jpg}
cfg=$(mktemp -d)
export BGSWAP_CONFIG_DIR=$cfg QT_QPA_PLATFORM=xcb
xvfb-run -a -s "-screen 0 1180x640x24" bash -c "
  python main.py --source demo --background '$bg' & pid=\$!
  sleep 12
  import -window root '$out'
  kill \$pid; wait \$pid || true"
rm -rf "$cfg"
echo "wrote $out"
