//! The "hosts" of `multihost.rs`: a bridge in the root namespace and one network namespace
//! per host on it, joined by veth pairs, and the `ip`/`install`/`cp` commands the test runs.
//!
//! Owns: creating the bridge and namespaces under one random tag, cutting and restoring a
//! host's link, and deleting everything it created when dropped (deleting a namespace deletes
//! its veth pair). Must not: touch an interface or namespace it did not create, or swallow a
//! failed command (it panics with the command and its stderr: never a silent skip).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

/// Run `ip args…`; panics with its stderr when it fails.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip {}`: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "`ip {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run `program args…`; panics with its stderr when it fails.
pub fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bridge in the root namespace (10.a.b.254/24) and one namespace per host on it (10.a.b.id).
pub struct Net {
    tag: String,
    subnet: [u8; 2],
    bridge: String,
    /// Namespaces made so far (removed in `Drop`).
    namespaces: Mutex<Vec<String>>,
}

impl Net {
    pub fn create() -> Net {
        let r: u32 = rand::random();
        let tag = format!("{:06x}", r & 0xff_ffff);
        let subnet = [16 + (r >> 24) as u8 % 224, (r >> 16) as u8];
        let net = Net {
            bridge: format!("qsb{tag}"),
            tag,
            subnet,
            namespaces: Mutex::new(Vec::new()),
        };
        ip(&["link", "add", &net.bridge, "type", "bridge"]);
        // Bridged frames bypass iptables (a host firewall's FORWARD policy must not matter).
        ip(&[
            "link",
            "set",
            &net.bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "0",
        ]);
        let cidr = format!("{}/24", net.gateway());
        ip(&["addr", "add", &cidr, "dev", &net.bridge]);
        ip(&["link", "set", &net.bridge, "up"]);
        net
    }

    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], 254)
    }

    pub fn addr(&self, id: u64) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], id as u8)
    }

    pub fn ns(&self, id: u64) -> String {
        format!("qs-{}-{id}", self.tag)
    }

    /// The host's end of the veth pair, inside its namespace.
    pub fn veth(&self, id: u64) -> String {
        format!("qs{}n{id}", self.tag)
    }

    /// Namespace `qs-<tag>-<id>` with loopback up and a veth into the bridge at 10.a.b.id.
    pub fn add_host(&self, id: u64) {
        let ns = self.ns(id);
        ip(&["netns", "add", &ns]);
        self.namespaces.lock().unwrap().push(ns.clone());
        let outside = format!("qs{}h{id}", self.tag);
        let inside = self.veth(id);
        ip(&[
            "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns", &ns,
        ]);
        ip(&["link", "set", &outside, "master", &self.bridge]);
        ip(&["link", "set", &outside, "up"]);
        let cidr = format!("{}/24", self.addr(id));
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        ip(&["-n", &ns, "addr", "add", &cidr, "dev", &inside]);
        ip(&["-n", &ns, "link", "set", &inside, "up"]);
    }

    /// Host `id`'s link down (cut off from everyone) or up again.
    pub fn set_link(&self, id: u64, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.ns(id), "link", "set", &self.veth(id), state]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth and the peer on the bridge.
        let namespaces = self
            .namespaces
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ns in namespaces.iter() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
