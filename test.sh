#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: install what the tests need (only when
# missing), then format check, clippy, and every test. `.ci/run` calls exactly this script.
#
#   ./test.sh            everything
#   ./test.sh --quick    skip fmt, clippy and the fuzz targets (for iterating)
set -euo pipefail
cd "$(dirname "$0")"

quick=0
[ "${1:-}" = "--quick" ] && quick=1

log() { printf '\n== %s\n' "$*"; }

# ---- prerequisites (idempotent) -------------------------------------------------------------
# apt packages the tests need. The protection core and schemes need none beyond the Rust
# toolchain; python3-venv for the moto KMS server and the PIV emulator; pcscd + vsmartcard-vpcd
# (a virtual reader) for the virtual YubiKey, libpcsclite-dev + pkg-config to build
# `signerctl --features yubikey`, haproxy for the Web3Signer API failover test, and strace
# for the fault suite's slow-fsync scenario (node/tests/faults.rs), and systemd for
# `systemd-analyze` (host bundles' unit, node/tests/host_bundles.rs).
APT_PACKAGES=(python3-venv pcscd vsmartcard-vpcd libpcsclite-dev pkg-config haproxy strace systemd)
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

# Debian's prometheus (2.42 on Debian 12): promtool for node/tests/alert_rules.rs and the server
# that node/tests/alerting.rs starts on loopback by itself. Installed without recommends (no
# node exporter), and the package's own service is kept from starting (nothing of ours
# listens on 0.0.0.0:9090): a policy-rc.d for the install where none exists, and the unit
# disabled where systemd runs.
if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "install ok installed"; then
  log "installing apt package: prometheus (promtool and server, service not started)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee /usr/sbin/policy-rc.d >/dev/null
    $sudo_cmd chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends prometheus
  [ -n "$policy" ] && $sudo_cmd rm -f "$policy"
  if [ -d /run/systemd/system ]; then $sudo_cmd systemctl disable --now prometheus 2>/dev/null || true; fi
fi

command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }

# A local AWS KMS server (moto) for node/tests/kms_moto.rs, `cryptography` for the PIV
# emulator (tests/fixtures/piv_emulator.py, driven by cli/tests/piv_emulator.rs), and the
# independent Web3Signer API client's BLS and SSZ libraries (tests/fixtures/web3signer_client.py,
# driven by node/tests/web3signer_api.rs), in a venv at .venv. Installed from PyPI only when
# missing, broken or not at the pinned version; the tests start them themselves.
MOTO_PACKAGES=(moto==5.2.5 flask==3.1.3 flask-cors==6.0.5)
PIV_PACKAGES=(cryptography==50.0.2)
ETH2_PACKAGES=(py_ecc==8.0.0 remerkleable==0.1.28 requests==2.34.2)
if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/python -c 'import moto.server, flask, flask_cors' 2>/dev/null \
  || ! .venv/bin/python -c 'import sys, cryptography; sys.exit(cryptography.__version__ != "50.0.2")' 2>/dev/null \
  || ! .venv/bin/python -c 'import py_ecc.bls, remerkleable, requests' 2>/dev/null; then
  log "creating .venv with ${MOTO_PACKAGES[*]} ${PIV_PACKAGES[*]} ${ETH2_PACKAGES[*]}"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "${MOTO_PACKAGES[@]}" "${PIV_PACKAGES[@]}" "${ETH2_PACKAGES[@]}"
fi

# pcscd with the vpcd virtual reader, for the virtual YubiKey tests. No systemd here: start it
# in the foreground mode, in the background of this script, and stop it on exit only if this
# script started it.
pcscd_pid=""
if ! pgrep -x pcscd >/dev/null; then
  log "starting pcscd (virtual smart card reader for the YubiKey tests)"
  sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd rm -f /run/pcscd/pcscd.comm  # stale socket of a pcscd that is gone
  mkdir -p target
  $sudo_cmd pcscd --foreground >target/pcscd.log 2>&1 &
  pcscd_pid=$!
  trap '[ -n "$pcscd_pid" ] && kill "$pcscd_pid" 2>/dev/null || true' EXIT
fi
for _ in $(seq 50); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
[ -S /run/pcscd/pcscd.comm ] || { echo "pcscd is not answering; see target/pcscd.log"; exit 1; }

# ---- static checks ----------------------------------------------------------------------------
if [ $quick -eq 0 ]; then
  log "cargo fmt --check"
  cargo fmt --all -- --check
  log "cargo clippy (warnings are errors)"
  cargo clippy --workspace --all-targets --locked --features signerctl/yubikey -- -D warnings
fi

# ---- crate boundaries --------------------------------------------------------------------------
# signerctl links no Raft, storage or KMS code, and the core builds without an async runtime.
log "crate boundaries"
if cargo tree --locked -p signerctl --features yubikey -e normal --prefix none | grep -E '^(openraft|redb|aws-[a-z-]+) '; then
  echo "signerctl must not depend on openraft, redb or the AWS SDK (listed above)"; exit 1
fi
if cargo tree --locked -p signer-core -e normal --prefix none | grep -E '^(tokio|mio) '; then
  echo "signer-core must build without tokio (listed above)"; exit 1
fi
echo "signerctl: no openraft, redb or AWS SDK; signer-core: no tokio"

# ---- tests ------------------------------------------------------------------------------------
log "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --features signerctl/yubikey --no-fail-fast
else
  cargo test --workspace --locked --features signerctl/yubikey --no-fail-fast
fi

# The vector harnesses again with their per-case output, so the log shows every case. Same
# workspace-wide build as above (selecting one package would re-resolve features and rebuild).
run_harness() {
  local title=$1 binary=$2 pattern=$3
  log "$title"
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --features signerctl/yubikey --no-capture -E "binary($binary)" 2>&1 | grep -E "$pattern"
  else
    cargo test --workspace --locked --features signerctl/yubikey --test "$binary" -- --nocapture 2>&1 | grep -E "$pattern"
  fi
}
run_harness "EIP-3076 interchange vectors (every case)" eip3076_vectors '^(PASS|FAIL|SKIP) |passed, .* failed|vector files'
run_harness "BLS12-381 vectors" bls_vectors '^(PASS|FAIL) |passed, .* failed'
run_harness "Espresso vectors" espresso_vectors '^(PASS|FAIL) |passed, .* failed'
run_harness "eth2 signing roots against an independent implementation (every case)" vectors '^(PASS|FAIL) |fixture cases passed'

# The alert rules' promtool unit tests again, so the log shows them (node/tests/alert_rules.rs
# runs them in the suite above, and node/tests/alerting.rs the live faults).
log "Prometheus alert rules (promtool check and unit tests of every alert)"
promtool check rules deploy/prometheus/alerts.yml
promtool test rules deploy/prometheus/alerts_test.yml

# ---- fuzz targets (fuzz/) -------------------------------------------------------------------
# Every libFuzzer target replays its seed corpus and kept crash inputs, then fuzzes for
# FUZZ_SECONDS (12) seconds, built with the stable toolchain (fuzz/run.sh says how). libFuzzer
# is C++: g++ builds it. The fuzz crate is not a workspace member, so its formatting is
# checked here.
if [ $quick -eq 0 ]; then
  if ! command -v c++ >/dev/null; then
    log "installing apt package: g++ (libFuzzer is built from C++)"
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq g++
  fi
  log "fuzz targets: replay every corpus and regression, then ${FUZZ_SECONDS:-12}s of fuzzing each"
  cargo fmt --manifest-path fuzz/Cargo.toml -- --check
  fuzz/run.sh
fi

log "all tests passed"
