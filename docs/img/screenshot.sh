#!/usr/bin/env bash
# Rebuild docs/img/report.png: the top of the quick start's report, as a headless Chromium renders it.
#   bash docs/img/screenshot.sh [RUN_FOLDER]   (default hwnas-runs/cpu-5ms; needs Debian's chromium package)
set -euo pipefail
cd "$(dirname "$0")/../.."
run="${1:-hwnas-runs/cpu-5ms}"
python="${PYTHON:-.venv/bin/python}"
"$python" -m hwnas.cli.main report "$run"
chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars --host-resolver-rules="MAP * ~NOTFOUND" \
    --window-size=1200,1500 --screenshot="$PWD/docs/img/report.png" "file://$PWD/$run/report.html" 2>/dev/null
echo "wrote docs/img/report.png"
