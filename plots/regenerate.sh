#!/usr/bin/env bash
# Regenerates the scaling study: builds quorumsim (release), runs every sweep in
# scenarios/sweeps/ into results/, then draws the charts into plots/.
#
#   bash plots/regenerate.sh            # full study (~25 min on 2 cores)
#   bash plots/regenerate.sh --quick    # CI-sized: results/<sweep>-quick/, plots/quick/ (~3 min)
#   bash plots/regenerate.sh --fresh    # delete the sweeps' results first (from scratch)
#
# Needs Swift, libsodium-dev and matplotlib (python3 -m pip install -r plots/requirements.txt).
# Sweeps are resumable: an interrupted run picks up where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=""
fresh=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick="--quick" ;;
    --fresh) fresh=1 ;;
    *) echo "usage: $0 [--quick] [--fresh]" >&2; exit 64 ;;
  esac
done
swift build -c release --product quorumsim
sweeps=(groups bitcoin-groups load variants faults validation cdf bitcoin-latency)
start=$(date +%s)
for s in "${sweeps[@]}"; do
  name="$s${quick:+-quick}"
  if [ "$fresh" = 1 ]; then rm -rf "results/$name"; fi
  .build/release/quorumsim sweep "scenarios/sweeps/$s.yaml" $quick
done
out=plots
if [ -n "$quick" ]; then out=plots/quick; fi
if python3 -c "import matplotlib" 2>/dev/null; then
  python3 plots/make_charts.py --results results --out "$out" $quick
else
  echo "matplotlib missing: charts not drawn (python3 -m pip install -r plots/requirements.txt)" >&2
  [ -n "$quick" ] || exit 1
fi
echo "study regenerated in $(( $(date +%s) - start )) s (plus the build); charts in $out/"
