//! The systemd unit `signer init` writes into each host's bundle.
//!
//! Owns: the unit's text and why each hardening line is there. Must not: write files (the
//! bundle does) or name paths other than the ones it is given.

use std::path::Path;

/// The service's name on every host.
pub const SERVICE: &str = "quorum-signer";
/// The system user the node runs as (created by the operator: `useradd --system`).
pub const USER: &str = "quorum-signer";

/// A hardened unit running `signer node --config CONFIG` as [`USER`], with `data_dir` the only
/// writable path.
pub fn unit(description: &str, signer: &Path, config: &Path, data_dir: &Path) -> String {
    format!(
        "\
# {description}
# Written by `signer init`. Install as /etc/systemd/system/{SERVICE}.service, then
# `systemctl daemon-reload && systemctl enable --now {SERVICE}`.
[Unit]
Description={description}
Documentation=https://github.com/quorum-signer/quorum-signer/blob/main/README.md
After=network-online.target
Wants=network-online.target

[Service]
Type=exec
User={USER}
Group={USER}
ExecStart={signer} node --config {config} --log-json
# A crashed node restarts; its Raft log and watermarks are on disk, so it rejoins safely.
Restart=on-failure
RestartSec=2s
# Give SIGTERM time to finish the batch in flight before SIGKILL.
TimeoutStopSec=30s
# The Raft log and state: the only writable place (0700, owned by {USER}).
ReadWritePaths={data}
UMask=0077
# Secrets are locked in memory (mlock): allow it without CAP_IPC_LOCK. No core dumps.
LimitMEMLOCK=64M
LimitCORE=0
LimitNOFILE=65536
# Nothing to gain: no capabilities, no privilege changes, no new namespaces.
CapabilityBoundingSet=
AmbientCapabilities=
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
PrivateUsers=yes
ProtectProc=invisible
ProcSubset=pid
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @obsolete @debug @mount @cpu-emulation
SystemCallErrorNumber=EPERM
DevicePolicy=closed
KeyringMode=private

[Install]
WantedBy=multi-user.target
",
        signer = signer.display(),
        config = config.display(),
        data = data_dir.display(),
    )
}
