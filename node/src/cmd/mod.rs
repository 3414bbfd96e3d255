//! Subcommands of the `signer` binary that write or run whole clusters (`init`, `dev-cluster`,
//! `demo`, `bench`) or issue their certificates (`pki`). They use the library like any client
//! would; no protection or signing logic lives here.

pub mod bench;
pub mod demo;
pub mod dev_cluster;
pub mod init;
pub mod pki;
