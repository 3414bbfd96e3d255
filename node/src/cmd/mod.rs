//! Subcommands of the `signer` binary that write or run whole clusters (`init`, `dev-cluster`,
//! `demo`, `bench`, `restore`) or issue their certificates (`pki`). They use the library like any client
//! would; no protection or signing logic lives here.

pub mod bench;
pub mod demo;
pub mod dev_cluster;
pub mod init;
pub mod pki;
pub mod restore;

/// A free range of consecutive loopback ports for a dev cluster of `nodes` nodes (a client,
/// peer, metrics and Web3Signer port each), below the ephemeral range (which starts at 32768
/// on Linux), so that no outgoing connection can take one of them meanwhile.
fn free_base_port(nodes: usize) -> anyhow::Result<u16> {
    use rand::Rng as _;
    let span = 4 * nodes as u16;
    let mut rng = rand::thread_rng();
    'search: for _ in 0..200 {
        let base: u16 = rng.gen_range(10_000..32_000) & !1;
        for port in base..base + span {
            if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue 'search;
            }
        }
        return Ok(base);
    }
    anyhow::bail!("found no {span} consecutive free ports on 127.0.0.1")
}
