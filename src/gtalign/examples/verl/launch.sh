#!/usr/bin/env bash
# GTAlign's PPO run (SPEC §6) with verl: an LLM judge server, then verl.trainer.main_ppo with
# gtalign_ppo.yaml and gtalign's welfare reward. Arguments are extra Hydra overrides for verl
# (key=value, +key=value), applied last. README.md in this folder explains each setting.
#
# Environment (defaults in brackets):
#   DATA_DIR          folder of the paper's data (train_test/...): sets the two below
#   TRAIN_FILES       training parquet(s), one path or a Hydra list "[a.parquet,b.parquet]"
#                     [math-hard, wildguard and ambig_qa train splits under DATA_DIR]
#   VAL_FILES         validation parquet(s) [DATA_DIR/train_test/all_test.parquet]
#   MODEL             actor (policy) model [Qwen/Qwen2.5-3B-Instruct]
#   CRITIC_MODEL      critic model [MODEL]
#   PRESET            gtalign reward preset, one scored per row (not paper-ablation) [paper]
#   JUDGE_URL         base URL (.../v1) of an OpenAI-compatible judge server that is already
#                     running. Unset: this script starts one on this node (below).
#   JUDGE_MODEL       model name the judge server serves [Qwen/Qwen3-32B]
#   JUDGE_SERVER      server to start: sglang (the paper's) or vllm [sglang]
#   JUDGE_GPUS        GPUs of the started judge (CUDA_VISIBLE_DEVICES) [4,5,6,7]
#   JUDGE_TP          tensor parallel size of the started judge [number of JUDGE_GPUS]
#   JUDGE_PORT        port of the started judge [30000]
#   JUDGE_HOST        address the reward workers reach the started judge at
#                     [127.0.0.1 on one node; this host's name when NNODES > 1]
#   JUDGE_ARGS        extra arguments for the judge server command []
#   JUDGE_WAIT        seconds to wait for the started judge to answer /v1/models [1800]
#   JUDGE_POLL        seconds between two looks at it [10]
#   TRAIN_GPUS        GPUs of training on this node (CUDA_VISIBLE_DEVICES)
#                     [0,1,2,3 when the judge is started here, else all]
#   N_GPUS_PER_NODE   training GPUs per node [number of TRAIN_GPUS, else 8]
#   NNODES            nodes in the Ray cluster (start Ray on every node first) [1]
#   PYTHON            interpreter with verl and gtalign installed [python3]
#   LOG_DIR           where the judge server's log goes [./gtalign-verl-logs]
#   CONFIG            the verl config [gtalign_ppo.yaml next to this script]
#   DRY_RUN=1         print the commands and start nothing
set -euo pipefail

RECIPE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONFIG="${CONFIG:-$RECIPE_DIR/gtalign_ppo.yaml}"
PYTHON="${PYTHON:-python3}"
DRY_RUN="${DRY_RUN:-0}"

die() { echo "launch.sh: $*" >&2; exit 2; }
count() { local -a parts; IFS=, read -r -a parts <<<"$1"; echo "${#parts[@]}"; }
show() { printf '%q ' "$@" | sed 's/ $//'; echo; }

[[ -f "$CONFIG" ]] || die "no verl config at $CONFIG (set CONFIG to a .yaml file)"
[[ "$CONFIG" == *.yaml ]] || die "CONFIG must be a .yaml file, got $CONFIG"
CONFIG_PATH="$(cd "$(dirname "$CONFIG")" && pwd)"
CONFIG_NAME="$(basename "$CONFIG" .yaml)"

if [[ -n "${DATA_DIR:-}" ]]; then
  split() { echo "$DATA_DIR/train_test/$1/train.parquet"; }
  TRAIN_FILES="${TRAIN_FILES:-[$(split math-hard),$(split wildguard),$(split ambig_qa)]}"
  VAL_FILES="${VAL_FILES:-$DATA_DIR/train_test/all_test.parquet}"
fi
[[ -n "${TRAIN_FILES:-}" ]] || die "set TRAIN_FILES (training parquet, or a list [a,b]) or DATA_DIR (the paper's data folder)"
[[ -n "${VAL_FILES:-}" ]] || die "set VAL_FILES (validation parquet) or DATA_DIR (the paper's data folder)"

MODEL="${MODEL:-Qwen/Qwen2.5-3B-Instruct}"
CRITIC_MODEL="${CRITIC_MODEL:-$MODEL}"
PRESET="${PRESET:-paper}"
JUDGE_MODEL="${JUDGE_MODEL:-Qwen/Qwen3-32B}"
NNODES="${NNODES:-1}"

JUDGE_CMD=()
if [[ -z "${JUDGE_URL:-}" ]]; then
  JUDGE_SERVER="${JUDGE_SERVER:-sglang}"
  JUDGE_GPUS="${JUDGE_GPUS:-4,5,6,7}"
  JUDGE_TP="${JUDGE_TP:-$(count "$JUDGE_GPUS")}"
  JUDGE_PORT="${JUDGE_PORT:-30000}"
  if [[ "$NNODES" == 1 ]]; then JUDGE_HOST="${JUDGE_HOST:-127.0.0.1}"; else JUDGE_HOST="${JUDGE_HOST:-$(hostname)}"; fi
  BIND="0.0.0.0"
  [[ "$JUDGE_HOST" == 127.0.0.1 || "$JUDGE_HOST" == localhost ]] && BIND="127.0.0.1"
  read -r -a EXTRA_JUDGE_ARGS <<<"${JUDGE_ARGS:-}"
  case "$JUDGE_SERVER" in
    sglang) JUDGE_CMD=("$PYTHON" -m sglang.launch_server --model-path "$JUDGE_MODEL" --served-model-name "$JUDGE_MODEL"
                       --host "$BIND" --port "$JUDGE_PORT" --tp "$JUDGE_TP") ;;
    vllm) JUDGE_CMD=(vllm serve "$JUDGE_MODEL" --served-model-name "$JUDGE_MODEL"
                     --host "$BIND" --port "$JUDGE_PORT" --tensor-parallel-size "$JUDGE_TP") ;;
    *) die "JUDGE_SERVER must be sglang or vllm, got '$JUDGE_SERVER' (or set JUDGE_URL to a running server)" ;;
  esac
  JUDGE_CMD+=("${EXTRA_JUDGE_ARGS[@]}")
  JUDGE_URL="http://$JUDGE_HOST:$JUDGE_PORT/v1"
  TRAIN_GPUS="${TRAIN_GPUS:-0,1,2,3}"
fi
if [[ -n "${TRAIN_GPUS:-}" ]]; then
  N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-$(count "$TRAIN_GPUS")}"
else
  N_GPUS_PER_NODE="${N_GPUS_PER_NODE:-8}"
fi

TRAIN_CMD=("$PYTHON" -m verl.trainer.main_ppo
  "--config-path=$CONFIG_PATH" "--config-name=$CONFIG_NAME"
  "data.train_files=$TRAIN_FILES"
  "data.val_files=$VAL_FILES"
  "actor_rollout_ref.model.path=$MODEL"
  "critic.model.path=$CRITIC_MODEL"
  "reward.custom_reward_function.reward_kwargs.preset=$PRESET"
  "reward.custom_reward_function.reward_kwargs.judge_url=$JUDGE_URL"
  "reward.custom_reward_function.reward_kwargs.judge_model=$JUDGE_MODEL"
  "trainer.n_gpus_per_node=$N_GPUS_PER_NODE"
  "trainer.nnodes=$NNODES"
  "$@")

LOG_DIR="${LOG_DIR:-./gtalign-verl-logs}"
if ((${#JUDGE_CMD[@]})); then
  echo "# judge server (started by this script, log in $LOG_DIR/judge.log)"
  echo "CUDA_VISIBLE_DEVICES=$JUDGE_GPUS $(show "${JUDGE_CMD[@]}")"
else
  echo "# judge server: expected at $JUDGE_URL"
fi
echo "# training"
echo "${TRAIN_GPUS:+CUDA_VISIBLE_DEVICES=$TRAIN_GPUS }$(show "${TRAIN_CMD[@]}")"
[[ "$DRY_RUN" != 1 ]] || exit 0

judge_ready() {
  "$PYTHON" - "$1" <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1].rstrip("/") + "/models", timeout=5) as reply:
        sys.exit(0 if reply.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

# The judge this script starts stops with it, however it ends.
JUDGE_PID=""
stop_judge() { [[ -z "$JUDGE_PID" ]] || kill "$JUDGE_PID" 2>/dev/null || true; }
trap stop_judge EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if ((${#JUDGE_CMD[@]})); then
  mkdir -p "$LOG_DIR"
  echo "launch.sh: starting the judge ($JUDGE_SERVER, $JUDGE_MODEL on GPUs $JUDGE_GPUS)"
  CUDA_VISIBLE_DEVICES="$JUDGE_GPUS" "${JUDGE_CMD[@]}" >"$LOG_DIR/judge.log" 2>&1 &
  JUDGE_PID=$!
  deadline=$((SECONDS + ${JUDGE_WAIT:-1800}))
  until judge_ready "$JUDGE_URL"; do
    kill -0 "$JUDGE_PID" 2>/dev/null || die "the judge server exited; see $LOG_DIR/judge.log"
    ((SECONDS < deadline)) || die "the judge server did not answer $JUDGE_URL/models within ${JUDGE_WAIT:-1800} s; see $LOG_DIR/judge.log"
    sleep "${JUDGE_POLL:-10}"
  done
elif ! judge_ready "$JUDGE_URL"; then
  die "no judge answers at $JUDGE_URL/models: start one, or unset JUDGE_URL to let this script start it"
fi

echo "launch.sh: judge ready at $JUDGE_URL; training on $N_GPUS_PER_NODE GPU(s) x $NNODES node(s)"
if [[ -n "${TRAIN_GPUS:-}" ]]; then export CUDA_VISIBLE_DEVICES="$TRAIN_GPUS"; fi
"${TRAIN_CMD[@]}"
