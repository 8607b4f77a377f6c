#!/bin/bash
# A BFCL run sharded over 4 workers as a Slurm job array, against an OpenAI-compatible service
# (e.g. vLLM at http://vllm-host:8000/v1), then joined with `evalkit merge` by a dependent job.
# See docs/own-server.md. Each task gets SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT;
# `--shard auto` turns them into shard 1/4 .. 4/4 (--array=0-3 works as well as 1-4).
#
#   export EVALKIT_API_KEY=...               # passed to the tasks by sbatch's default --export=ALL
#   jobid=$(sbatch --parsable docs/slurm-array.sh)
#   sbatch --dependency=afterok:$jobid --wrap 'evalkit merge runs/shards/* --out runs/merged'
#
#SBATCH --job-name=evalkit-bfcl
#SBATCH --array=1-4
#SBATCH --cpus-per-task=2
#SBATCH --time=06:00:00
#SBATCH --output=logs/evalkit-%A_%a.out

set -euo pipefail
# Per task: the shards share no cache file over a network file system.
export EVALKIT_CACHE_DIR="${TMPDIR:-/tmp}/evalkit-cache-${SLURM_ARRAY_TASK_ID}"

# Every task imports the same pinned wheel (SHA-256 checked): every shard plans the same jobs.
evalkit import bfcl --category simple_python --out "${TMPDIR:-/tmp}/suites-${SLURM_ARRAY_TASK_ID}"
evalkit run --model Qwen/Qwen2.5-7B-Instruct --base-url "${EVALKIT_BASE_URL:-http://vllm-host:8000/v1}" \
    --suite "${TMPDIR:-/tmp}/suites-${SLURM_ARRAY_TASK_ID}/simple_python.jsonl" --format native \
    --shard auto --out runs/shards --no-report --quiet
