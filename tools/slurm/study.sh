#!/bin/bash
# The whole study on a Slurm cluster (docs/slurm.md): each grid a job array of tools/slurm/cell.sh that
# starts once the grid before it has finished (afterok), then one job that runs `reproduce`, which finds
# every cell finished and only executes the notebooks. Run it from the project folder.
set -euo pipefail
export NORMTUNE_PROFILE=${NORMTUNE_PROFILE:-cpu}
logs=${NORMTUNE_LOGS:-logs}
mkdir -p "$logs"
prev=""
for grid in fisher main change topk crosstask; do
  n=$(deno run -A lib/cli/main.ts grid --grid "$grid" --count)
  prev=$(sbatch --parsable ${prev:+--dependency=afterok:$prev} --array=0-$((n - 1)) \
    --job-name="normtune-$grid" --output="$logs/%x-%A_%a.out" --export=ALL,GRID="$grid" tools/slurm/cell.sh)
  echo "$grid: $n cells, job $prev"
done
last=$(sbatch --parsable --dependency=afterok:"$prev" --job-name=normtune-reports --time=01:00:00 \
  --output="$logs/%x-%j.out" --wrap "deno run -A lib/cli/main.ts reproduce")
echo "reports: job $last"
