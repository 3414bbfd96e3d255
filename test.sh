#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: install what the tests need (only when
# missing), then format check, clippy, and every test. `.ci/run` calls exactly this script.
#
#   ./test.sh            everything
#   ./test.sh --quick    skip fmt and clippy (for iterating)
set -euo pipefail
cd "$(dirname "$0")"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

log() { printf '\n== %s\n' "$*"; }

# ---- prerequisites (idempotent) -------------------------------------------------------------
# apt packages the tests need. The protection core and schemes need none beyond the Rust
# toolchain; later parts add theirs here (pcscd, vsmartcard-vpcd, libpcsclite-dev for the
# virtual YubiKey; python3-venv for the moto KMS server).
APT_PACKAGES=(python3-venv)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing apt packages: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }

# A local AWS KMS server (moto) for signer/tests/kms_moto.rs, in a venv at .venv. Installed from
# PyPI only when missing or broken; the tests start `.venv/bin/moto_server` themselves.
MOTO_PACKAGES=(moto==5.2.5 flask==3.1.3 flask-cors==6.0.5)
if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/python -c 'import moto.server, flask, flask_cors' 2>/dev/null; then
  log "creating .venv with ${MOTO_PACKAGES[*]} (local KMS server for the custody tests)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "${MOTO_PACKAGES[@]}"
fi

# ---- static checks ----------------------------------------------------------------------------
if [ $quick -eq 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

# ---- tests ------------------------------------------------------------------------------------
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

# The vector harnesses again with their per-case output, so the log shows every case. Same
# workspace-wide build as above (selecting one package would re-resolve features and rebuild).
run_harness() {
  local title=$1 binary=$2 pattern=$3
  log "$title"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-capture -E "binary($binary)" 2>&1 | grep -E "$pattern"
  else
    cargo test --workspace --locked --test "$binary" -- --nocapture 2>&1 | grep -E "$pattern"
  fi
}
run_harness "EIP-3076 interchange vectors (every case)" eip3076_vectors '^(PASS|FAIL|SKIP) |passed, .* failed|vector files'
run_harness "BLS12-381 vectors" bls_vectors '^(PASS|FAIL) |passed, .* failed'
run_harness "Espresso vectors" espresso_vectors '^(PASS|FAIL) |passed, .* failed'

log "all tests passed"
