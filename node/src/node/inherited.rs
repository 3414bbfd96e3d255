//! Listening sockets a node inherits from whoever started it, instead of binding them itself:
//! systemd socket activation (`LISTEN_PID`, `LISTEN_FDS`), or any supervisor or test harness
//! that bound the ports and names the descriptors with `signer node --listen-fd FD`.
//!
//! Owns: taking over inherited file descriptors, checking that each is a listening TCP socket,
//! and handing each one to the configured address it is bound to. Must not: bind, choose
//! addresses, or keep a socket that serves no configured address (that is a configuration
//! error, reported by [`InheritedListeners::finish`]).
//!
//! This module and `custody::hygiene` are the crate's only users of `unsafe`: here one
//! `from_raw_fd` (taking ownership of an inherited descriptor) and the `fcntl`, `getsockopt`
//! and `getsockname` calls that check the descriptor first, each with its `// SAFETY:`
//! argument.
//!
//! To ensure correctness:
//! - a descriptor is taken over at most once, only after it is checked to be open, a socket,
//!   TCP/IP, stream and listening; never 0, 1 or 2;
//! - systemd's descriptors are taken only when `LISTEN_PID` names this process (the variables
//!   are meant for one process), and the variables are removed once read;
//! - a taken descriptor is made close-on-exec (no child of the node inherits it) and
//!   non-blocking (as Tokio requires);
//! - an inherited socket serves the configured address equal to its local address, or the
//!   node does not start.
#![allow(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const SD_LISTEN_FDS_START: RawFd = 3;

/// Why the node's listening sockets could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenError {
    /// A configured address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// An inherited descriptor cannot serve as a listener.
    #[error("inherited fd {fd}: {reason}")]
    Unusable {
        /// The descriptor.
        fd: RawFd,
        /// What is wrong with it.
        reason: String,
    },
    /// A descriptor was named twice (by `--listen-fd`, or by it and by systemd).
    #[error("inherited fd {0} is named twice")]
    Duplicate(RawFd),
    /// `LISTEN_FDS` is not a count of descriptors.
    #[error("LISTEN_FDS={0:?} is not a number of descriptors")]
    BadCount(String),
    /// An inherited listener is bound to no configured address.
    #[error(
        "inherited fd {fd} listens on {addr}, which is not a configured listen address \
         (client_listen, peer_listen, metrics_listen, [web3signer] listen)"
    )]
    Unused {
        /// The descriptor.
        fd: RawFd,
        /// Its local address.
        addr: SocketAddr,
    },
}

/// Inherited listening sockets not yet given to an address.
#[derive(Debug, Default)]
pub struct InheritedListeners {
    sockets: Vec<(RawFd, SocketAddr, std::net::TcpListener)>,
}

impl InheritedListeners {
    /// Take over the descriptors in `fds` (from `--listen-fd`) and, when systemd passed
    /// sockets to this process, those too; removes systemd's variables from the environment.
    /// Call before starting any thread (it changes the environment).
    pub fn take(fds: &[RawFd]) -> Result<InheritedListeners, ListenError> {
        let pid = std::env::var("LISTEN_PID").ok();
        let count = std::env::var("LISTEN_FDS").ok();
        let mut all = fds.to_vec();
        all.extend(systemd_fds(
            pid.as_deref(),
            count.as_deref(),
            std::process::id(),
        )?);
        for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
            std::env::remove_var(name);
        }
        InheritedListeners::from_fds(&all)
    }

    /// Take over the listening TCP sockets at `fds`, which this process must own and nothing
    /// else in it may use.
    pub fn from_fds(fds: &[RawFd]) -> Result<InheritedListeners, ListenError> {
        for (i, fd) in fds.iter().enumerate() {
            if fds[..i].contains(fd) {
                return Err(ListenError::Duplicate(*fd));
            }
        }
        let mut sockets = Vec::with_capacity(fds.len());
        for &fd in fds {
            let listener = take_listener(fd)?;
            let addr = listener.local_addr().map_err(|e| ListenError::Unusable {
                fd,
                reason: format!("no local address: {e}"),
            })?;
            sockets.push((fd, addr, listener));
        }
        Ok(InheritedListeners { sockets })
    }

    /// The inherited listener bound to exactly `addr`, if any; it is no longer held here.
    pub fn claim(&mut self, addr: SocketAddr) -> Option<(RawFd, std::net::TcpListener)> {
        let index = self.sockets.iter().position(|(_, a, _)| *a == addr)?;
        let (fd, _, listener) = self.sockets.swap_remove(index);
        Some((fd, listener))
    }

    /// Fails when a listener is left that no configured address claimed.
    pub fn finish(self) -> Result<(), ListenError> {
        match self.sockets.first() {
            Some(&(fd, addr, _)) => Err(ListenError::Unused { fd, addr }),
            None => Ok(()),
        }
    }

    /// How many listeners are held.
    pub fn len(&self) -> usize {
        self.sockets.len()
    }

    /// Whether no listener is held.
    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// The descriptors systemd passed to process `pid`, per its `LISTEN_PID` and `LISTEN_FDS`
/// variables: none when either is unset or `LISTEN_PID` names another process (as
/// `sd_listen_fds` does), else `SD_LISTEN_FDS_START ..` for `LISTEN_FDS` descriptors.
pub fn systemd_fds(
    listen_pid: Option<&str>,
    listen_fds: Option<&str>,
    pid: u32,
) -> Result<Vec<RawFd>, ListenError> {
    let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
        return Ok(Vec::new());
    };
    if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
        return Ok(Vec::new());
    }
    let count: RawFd = listen_fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (0..=1024).contains(n))
        .ok_or_else(|| ListenError::BadCount(listen_fds.to_owned()))?;
    Ok((SD_LISTEN_FDS_START..SD_LISTEN_FDS_START + count).collect())
}

/// Check `fd` and take ownership of it as a listener (close-on-exec, non-blocking).
fn take_listener(fd: RawFd) -> Result<std::net::TcpListener, ListenError> {
    let unusable = |reason: &str| ListenError::Unusable {
        fd,
        reason: reason.to_owned(),
    };
    if fd < 0 {
        return Err(unusable("not a descriptor"));
    }
    if fd <= libc::STDERR_FILENO {
        return Err(unusable("0, 1 and 2 are the standard streams"));
    }
    // SAFETY: `F_GETFD` reads the descriptor's flags; it touches no memory and fails with
    // EBADF for a descriptor that is not open.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags == -1 {
        return Err(unusable("not an open descriptor"));
    }
    let int_option = |option: libc::c_int| -> Result<libc::c_int, ListenError> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `getsockopt` writes at most `len` bytes (one `c_int`) to `value` and the
        // actual length to `len`, both live locals; it fails with ENOTSOCK on a non-socket.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                std::ptr::addr_of_mut!(value).cast(),
                &mut len,
            )
        };
        if rc == -1 {
            let e = std::io::Error::last_os_error();
            return Err(unusable(&format!("not a socket: {e}")));
        }
        Ok(value)
    };
    if int_option(libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(unusable("not a stream socket"));
    }
    if int_option(libc::SO_ACCEPTCONN)? != 1 {
        return Err(unusable("not listening"));
    }
    let mut storage = std::mem::MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `getsockname` writes at most `len` bytes of the socket's address into
    // `storage` (a live local of that size) and the actual length to `len`.
    let rc = unsafe { libc::getsockname(fd, storage.as_mut_ptr().cast(), &mut len) };
    if rc == -1 {
        let e = std::io::Error::last_os_error();
        return Err(unusable(&format!("no local address: {e}")));
    }
    // SAFETY: all-zero bytes are a valid `sockaddr_storage`, and `getsockname` only wrote
    // into it.
    let family = libc::c_int::from(unsafe { storage.assume_init() }.ss_family);
    if family != libc::AF_INET && family != libc::AF_INET6 {
        return Err(unusable("not a TCP/IP socket"));
    }
    // SAFETY: `F_SETFD` sets the descriptor's flags; it touches no memory.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } == -1 {
        return Err(unusable(&format!(
            "cannot set close-on-exec: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `fd` is open (checked above) and a listening TCP socket; it was given to this
    // process to own (by `--listen-fd` or systemd), `from_fds` refuses it a second time, and
    // nothing else in the node refers to it, so the `OwnedFd` is its only owner and closes it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let listener = std::net::TcpListener::from(owned);
    listener
        .set_nonblocking(true)
        .map_err(|e| unusable(&format!("cannot make it non-blocking: {e}")))?;
    Ok(listener)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::os::fd::{AsRawFd, IntoRawFd};

    /// A listening socket on a port-0 loopback address, released to a bare descriptor.
    fn listening_fd() -> (RawFd, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener.into_raw_fd(), addr)
    }

    fn cloexec(fd: RawFd) -> bool {
        // SAFETY: reads the flags of a descriptor of this test.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert_ne!(flags, -1);
        flags & libc::FD_CLOEXEC != 0
    }

    fn reason(err: ListenError) -> String {
        match err {
            ListenError::Unusable { reason, .. } => reason,
            other => panic!("not Unusable: {other}"),
        }
    }

    #[test]
    fn systemd_fds_only_for_this_process() {
        let cases: [(Option<&str>, Option<&str>, Vec<RawFd>); 6] = [
            (None, None, vec![]),
            (Some("42"), None, vec![]),
            (None, Some("2"), vec![]),
            (Some("41"), Some("2"), vec![]),
            (Some("42"), Some("0"), vec![]),
            (Some("42"), Some("3"), vec![3, 4, 5]),
        ];
        for (pid, fds, expected) in cases {
            assert_eq!(
                systemd_fds(pid, fds, 42).unwrap(),
                expected,
                "{pid:?} {fds:?}"
            );
        }
        for bad in ["-1", "two", "", "5000"] {
            assert!(
                matches!(systemd_fds(Some("42"), Some(bad), 42), Err(ListenError::BadCount(v)) if v == bad),
                "{bad:?}"
            );
        }
        // Another process's count is not even read.
        assert!(systemd_fds(Some("41"), Some("two"), 42).unwrap().is_empty());
    }

    #[test]
    fn takes_a_listening_socket_and_hands_it_to_its_address() {
        let (fd, addr) = listening_fd();
        // As a parent hands it over: inheritable.
        // SAFETY: clears the flags of a descriptor of this test.
        assert_ne!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, -1);
        let mut inherited = InheritedListeners::from_fds(&[fd]).unwrap();
        assert_eq!(inherited.len(), 1);
        assert!(cloexec(fd), "a taken descriptor is close-on-exec");
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(inherited.claim(other).is_none());
        let (claimed_fd, listener) = inherited.claim(addr).unwrap();
        assert_eq!(claimed_fd, fd);
        assert_eq!(listener.as_raw_fd(), fd);
        assert_eq!(listener.local_addr().unwrap(), addr);
        assert!(inherited.claim(addr).is_none());
        assert!(inherited.is_empty());
        inherited.finish().unwrap();
        // It serves: non-blocking, so accept says WouldBlock until a client connects.
        assert_eq!(
            listener.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock
        );
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip(), addr.ip());
    }

    #[test]
    fn an_unclaimed_listener_fails_the_start() {
        let (fd, addr) = listening_fd();
        let inherited = InheritedListeners::from_fds(&[fd]).unwrap();
        match inherited.finish() {
            Err(ListenError::Unused { fd: f, addr: a }) => assert_eq!((f, a), (fd, addr)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_descriptors_that_cannot_listen() {
        let (fd, _) = listening_fd();
        assert!(matches!(
            InheritedListeners::from_fds(&[fd, fd]),
            Err(ListenError::Duplicate(d)) if d == fd
        ));
        // Not taken by the refused call: still open, still ours to close.
        drop(InheritedListeners::from_fds(&[fd]).unwrap());

        for std_stream in [0, 1, 2] {
            assert_eq!(
                reason(InheritedListeners::from_fds(&[std_stream]).unwrap_err()),
                "0, 1 and 2 are the standard streams"
            );
        }
        // A number no descriptor has (above any open-files limit), and a negative one.
        assert_eq!(
            reason(InheritedListeners::from_fds(&[1 << 30]).unwrap_err()),
            "not an open descriptor"
        );
        assert_eq!(
            reason(InheritedListeners::from_fds(&[-1]).unwrap_err()),
            "not a descriptor"
        );

        let file = tempfile::tempfile().unwrap();
        assert!(
            reason(InheritedListeners::from_fds(&[file.as_raw_fd()]).unwrap_err())
                .starts_with("not a socket")
        );

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            reason(InheritedListeners::from_fds(&[udp.as_raw_fd()]).unwrap_err()),
            "not a stream socket"
        );

        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        assert_eq!(
            reason(InheritedListeners::from_fds(&[unix.as_raw_fd()]).unwrap_err()),
            "not a TCP/IP socket"
        );

        // Connected, not listening: the client end of a connection.
        let (listening, addr) = listening_fd();
        let client = std::net::TcpStream::connect(addr).unwrap();
        assert_eq!(
            reason(InheritedListeners::from_fds(&[client.as_raw_fd()]).unwrap_err()),
            "not listening"
        );
        drop(InheritedListeners::from_fds(&[listening]).unwrap());

        // The checks run before anything is taken: the file, UDP, Unix and client sockets are
        // still open here (their owners close them).
        for fd in [
            file.as_raw_fd(),
            udp.as_raw_fd(),
            unix.as_raw_fd(),
            client.as_raw_fd(),
        ] {
            // SAFETY: reads the flags of a descriptor of this test.
            assert_ne!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1);
        }
    }
}
