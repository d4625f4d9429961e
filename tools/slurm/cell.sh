#!/bin/bash
#SBATCH --job-name=normtune
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
# One cell of a grid, as one task of a job array (tools/slurm/study.sh submits it with GRID set).
# Everything else comes from the submitting shell (sbatch exports its environment): NORMTUNE_PROFILE,
# GLUE_DIR, NORMTUNE_MODELS_DIR, NORMTUNE_BACKEND, NORMTUNE_RESULTS, NORMTUNE_RUNS.
# For the `paper` profile on GPUs add `#SBATCH --gres=gpu:1` and choose NORMTUNE_BACKEND (docs/gpu.md).
set -euo pipefail
cd "$SLURM_SUBMIT_DIR"
deno run -A lib/cli/main.ts run-cell --grid "$GRID" --index "$SLURM_ARRAY_TASK_ID"
