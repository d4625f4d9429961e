#!/usr/bin/env bash
# The webgpu backend on a GPU machine, in one run of at most 8 minutes, offline: prints the WebGPU
# adapter, runs the webgpu tests, benchmarks training steps on webgpu (BERT-tiny; BERT-base full and
# LayerNorm-only at 32 x 128), and, where PyTorch with CUDA is installed, times the same bert-base steps
# with ../shared/bench/torch_step.py --device cuda (float32, TF32 off) and prints the ratios.
#
# What it expects (nothing is downloaded):
#   - this project tree with node_modules/ filled (`deno install` on a machine with internet);
#   - a deno 2.9.6 binary: $DENO (a path), else $DENO_XZ or deno.xz at the project root (made with
#     `xz -9 -c "$(command -v deno)" > deno.xz`, ~31 MB; unpacked into a temporary folder), else `deno`
#     on PATH;
#   - a Vulkan driver for the GPU (NVIDIA's driver ships one; AMD/Intel: mesa-vulkan-drivers). Without a
#     GPU, Mesa's llvmpipe software adapter is found instead: everything runs, but its times mean nothing.
#
#   bash tools/gpu-check.sh            # the full check (GPU machine)
#   bash tools/gpu-check.sh --quick    # tiny shapes only, no bert-base, no PyTorch (CI / llvmpipe)
#
# Results go to $OUT (default reports/gpu-check/): adapter.txt, tests.txt, bench-*.json, torch-*.json,
# summary.txt. Each phase has its own time limit (adapter 20 s, tests 110, tiny 45, base 170, PyTorch
# 20 + 2 x 45, ratios 15: 470 s in all), so the run ends within 8 minutes; a phase that runs out says so
# in the summary and the next one starts. On llvmpipe, --quick took 85 s (2 cores, load average 3-4.5).
set -uo pipefail
cd "$(dirname "$0")/.."
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
OUT=${OUT:-reports/gpu-check}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
started=$(date +%s)

# ---- deno ----
if [ -z "${DENO:-}" ]; then
  xzfile=${DENO_XZ:-deno.xz}
  if [ -f "$xzfile" ]; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    xz -dc "$xzfile" >"$tmp/deno" && chmod +x "$tmp/deno"
    DENO="$tmp/deno"
  else
    DENO=$(command -v deno || true)
  fi
fi
if [ -z "$DENO" ] || ! "$DENO" --version >/dev/null 2>&1; then
  echo "gpu-check: no deno: set DENO=/path/to/deno or put deno.xz at the project root" >&2
  exit 2
fi
[ -d node_modules/@tensorflow/tfjs-backend-webgpu ] || {
  echo "gpu-check: node_modules lacks @tensorflow/tfjs-backend-webgpu: run \`deno install\` where there is internet" >&2
  exit 2
}
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
# Offline: every module must come from node_modules and the lockfile, never the network.
DRUN=("$DENO" run -A --cached-only)
say "gpu-check: $("$DENO" --version | head -1); $(uname -sm); quick=$QUICK"

# ---- 1. adapter (20 s) ----
timeout 20 "${DRUN[@]}" - >"$OUT/adapter.txt" 2>&1 <<'EOF'
import { autoTakesWebgpu, findAdapter } from "./lib/backend/webgpu.ts";
const found = await findAdapter();
if (!found) {
  console.log("adapter: none (no Vulkan driver? see docs/gpu.md)");
  Deno.exit(1);
}
console.log(`adapter: ${found.name} (${found.software ? "software" : "hardware"})`);
console.log(`info: ${JSON.stringify(found.info)}`);
const rule = autoTakesWebgpu(found);
console.log(`auto: ${rule.take ? "takes webgpu" : rule.note}`);
EOF
adapter_rc=$?
cat "$OUT/adapter.txt" | tee -a "$SUMMARY"
command -v vulkaninfo >/dev/null && timeout 10 vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName|apiVersion" >>"$OUT/adapter.txt"
if [ $adapter_rc -ne 0 ]; then
  say "gpu-check: no WebGPU adapter: stopping"
  exit 1
fi

# ---- 2. webgpu tests (110 s) ----
TESTS="tests/backend/webgpu_test.ts tests/backend/gpu_memory_test.ts tests/bert/webgpu_test.ts tests/bench/webgpu_test.ts tests/tuning/webgpu_test.ts"
t0=$(date +%s)
timeout 110 "$DENO" test -A --cached-only $TESTS >"$OUT/tests.txt" 2>&1
rc=$?
say "tests: exit $rc in $(($(date +%s) - t0)) s ($(grep -aE '^(ok|FAILED) \|' "$OUT/tests.txt" | tail -1))"
[ $rc -eq 124 ] && say "tests: ran out of their 110 s"

# ---- 3. webgpu benchmark ----
bench() { # name, seconds, flags...
  local name=$1 limit=$2
  shift 2
  local t0
  t0=$(date +%s)
  timeout "$limit" "${DRUN[@]}" tools/bench.ts --backend webgpu --no-torch --out "$OUT/bench-$name.json" "$@" \
    >"$OUT/bench-$name.txt" 2>&1
  local rc=$?
  say "bench $name: exit $rc in $(($(date +%s) - t0)) s$([ $rc -eq 124 ] && echo " (ran out of its $limit s)")"
  # The table printed at the end (the same rows were logged one by one while running).
  awk '/^shape /{p=1} p && /^(shape|tiny|mini|base) /' "$OUT/bench-$name.txt" | tee -a "$SUMMARY"
}
if [ $QUICK -eq 1 ]; then
  bench tiny 90 --shapes tiny --modes layernorm,full --batch 4 --seq 32 --repeats 2
else
  bench tiny 45 --shapes tiny --modes layernorm,full --repeats 5
  # The steps only: eval and Fisher at bert-base would take time the steps need.
  bench base 170 --shapes base --modes layernorm,full --batch 32 --seq 128 --repeats 3 --no-extras
fi

# ---- 4. PyTorch on CUDA, the same bert-base steps ----
TORCH_STEP=${NORMTUNE_TORCH_STEP:-../shared/bench/torch_step.py}
if [ $QUICK -eq 1 ]; then
  say "torch: skipped (--quick)"
elif ! timeout 20 python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  say "torch: no PyTorch with CUDA here: no ratios"
elif [ ! -f "$TORCH_STEP" ]; then
  say "torch: $TORCH_STEP not found: no ratios"
else
  for mode in layernorm full; do
    timeout 45 python3 "$TORCH_STEP" --device cuda --shape base --mode "$mode" --batch 32 --seq 128 --steps 5 \
      >"$OUT/torch-$mode.json" 2>"$OUT/torch-$mode.err" || say "torch $mode: failed (see $OUT/torch-$mode.err)"
  done
  # normtune step / PyTorch step per mode, from the two JSON files.
  timeout 15 "${DRUN[@]}" - "$OUT" <<'EOF' | tee -a "$SUMMARY"
const out = Deno.args[0];
const bench = JSON.parse(Deno.readTextFileSync(`${out}/bench-base.json`));
for (const mode of ["layernorm", "full"]) {
  let torch;
  try {
    torch = JSON.parse(Deno.readTextFileSync(`${out}/torch-${mode}.json`));
  } catch {
    console.log(`ratio base ${mode}: no PyTorch result`);
    continue;
  }
  const c = bench.cases.find((x: { kind: string }) => x.kind === mode);
  if (!c || !(c.stepSeconds > 0)) {
    console.log(`ratio base ${mode}: no webgpu result`);
    continue;
  }
  console.log(
    `ratio base ${mode} 32x128: webgpu ${c.stepSeconds.toFixed(3)} s / torch cuda ${torch.step_s} s = ` +
      `${(c.stepSeconds / torch.step_s).toFixed(2)} (${bench.adapter}; ${torch.runtime})`,
  );
}
EOF
fi
say "gpu-check: done in $(($(date +%s) - started)) s; results in $OUT/"
