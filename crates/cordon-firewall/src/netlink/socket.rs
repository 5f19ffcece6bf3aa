//! A netlink socket (NETLINK_NETFILTER for nf_tables, NETLINK_ROUTE for the interface
//! list): send a batch and collect its ACKs, send a request and collect its dump, or join
//! multicast groups and wait for change notifications. Plain libc calls; the socket belongs
//! to the network namespace of the thread that opens it.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

use super::consts::*;
use super::decode::{self, ErrorMsg};
use super::encode::EncodedBatch;

/// Replies larger than this are not sent by the kernel in one datagram (dumps are cut
/// into ~32 KiB pieces), so one buffer this size is enough. It is reserved, not zeroed:
/// `recv` writes into its spare capacity and only the bytes received become the buffer's
/// contents, so a socket costs no 128 KiB memset and touches only the pages the kernel
/// fills (issue #18: a `cordon isolate` opens several sockets, and zeroing each buffer
/// was a measurable part of its page faults).
const RECV_BUF: usize = 128 * 1024;

/// Sequence numbers differ between sockets and calls, so a stale reply is never taken for
/// the answer to a new request.
static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn next_seq(count: u32) -> u32 {
    let base = SEQ.fetch_add(count.saturating_add(2), Ordering::Relaxed);
    // Mix in the process id so two processes don't start at the same numbers; the kernel
    // does not care, it only echoes them. Read once: musl does not cache getpid(), and a
    // `cordon isolate` asks for ≈ 70 sequence numbers (issue #18).
    static MIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    base.wrapping_add(*MIX.get_or_init(|| std::process::id().wrapping_mul(7919)))
}

/// What went wrong talking to nf_tables.
#[derive(Debug)]
pub enum NlError {
    /// A system call failed.
    Io { context: &'static str, err: io::Error },
    /// The kernel answered with an error for message `seq`.
    Kernel(ErrorMsg),
    /// The reply did not parse.
    Decode(decode::DecodeError),
}

impl NlError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NlError::Io { err, .. } => err.raw_os_error(),
            NlError::Kernel(e) => Some(e.errno),
            NlError::Decode(_) => None,
        }
    }
}

impl From<decode::DecodeError> for NlError {
    fn from(e: decode::DecodeError) -> Self {
        NlError::Decode(e)
    }
}

pub struct Socket {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl Socket {
    /// A NETLINK_NETFILTER socket for nf_tables requests and batches.
    pub fn open() -> Result<Socket, NlError> {
        Socket::open_protocol(NETLINK_NETFILTER)
    }

    /// A socket of netlink `protocol` (`NETLINK_NETFILTER`, `NETLINK_ROUTE`).
    pub fn open_protocol(protocol: i32) -> Result<Socket, NlError> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, protocol) };
        if fd < 0 {
            return Err(NlError::Io {
                context: "opening a netfilter netlink socket",
                err: io::Error::last_os_error(),
            });
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sock = Socket {
            fd,
            buf: Vec::with_capacity(RECV_BUF),
        };
        // Extended ACKs carry the kernel's reason text; capped ACKs keep error replies
        // small. Both are optional: old kernels just ignore the failure.
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1);
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1);
        // A reply that never comes (it should: the kernel answers synchronously) must not
        // hang the agent forever.
        let tv = libc::timeval { tv_sec: 5, tv_usec: 0 };
        // SAFETY: tv outlives the call and the length matches its type.
        unsafe {
            libc::setsockopt(
                sock.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        let mut addr: libc::sockaddr_nl = unsafe_zeroed_sockaddr();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: addr is a valid sockaddr_nl and the length matches.
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(NlError::Io {
                context: "binding the netlink socket",
                err: io::Error::last_os_error(),
            });
        }
        Ok(sock)
    }

    /// Joins netlink multicast group `group` (e.g. `NFNLGRP_NFTABLES`, `RTNLGRP_LINK`), so
    /// the kernel sends its change notifications to this socket.
    pub fn join_group(&self, group: u32) -> Result<(), NlError> {
        let group = i32::try_from(group).unwrap_or(i32::MAX);
        if self.setsockopt(SOL_NETLINK, libc::NETLINK_ADD_MEMBERSHIP, group) {
            Ok(())
        } else {
            Err(NlError::Io {
                context: "joining a netlink multicast group",
                err: io::Error::last_os_error(),
            })
        }
    }

    /// The socket's descriptor, for `poll(2)`.
    pub fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// Every message queued on the socket now (notifications), without waiting; an
    /// overrun receive buffer (ENOBUFS: notifications were lost) counts as one message of
    /// type 0 so the caller re-reads the state it watches.
    pub fn drain(&mut self) -> Result<Vec<(u16, Vec<u8>)>, NlError> {
        let mut out = Vec::new();
        loop {
            match self.recv(true) {
                Ok(Some(n)) => {
                    for m in decode::messages(&self.buf[..n])? {
                        out.push((m.ty, m.payload.to_vec()));
                    }
                }
                Ok(None) => return Ok(out),
                Err(NlError::Io { err, .. }) if err.raw_os_error() == Some(libc::ENOBUFS) => out.push((0, Vec::new())),
                Err(e) => return Err(e),
            }
        }
    }

    fn setsockopt(&self, level: i32, opt: i32, val: i32) -> bool {
        // SAFETY: val outlives the call; the length is that of an int.
        unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                opt,
                (&val as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            ) == 0
        }
    }

    fn send(&self, bytes: &[u8]) -> Result<(), NlError> {
        if bytes.len() > 200 * 1024 {
            // The kernel refuses a datagram larger than the send buffer; a very long
            // allow-list needs a bigger one (SO_SNDBUFFORCE works for root).
            let size = i32::try_from(bytes.len().saturating_mul(2)).unwrap_or(i32::MAX);
            if !self.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, size) {
                self.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, size);
            }
        }
        let mut addr: libc::sockaddr_nl = unsafe_zeroed_sockaddr();
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bytes and addr are valid for the duration of the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(NlError::Io {
                context: "sending to nf_tables",
                err: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// One datagram; `None` when `nonblocking` and nothing is queued.
    fn recv(&mut self, nonblocking: bool) -> Result<Option<usize>, NlError> {
        let flags = if nonblocking { libc::MSG_DONTWAIT } else { 0 };
        loop {
            self.buf.clear();
            let spare = self.buf.spare_capacity_mut();
            // SAFETY: `spare` is writable memory of `spare.len()` bytes owned by the buffer;
            // the kernel writes at most that many bytes into it.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), flags) };
            if n >= 0 {
                let n = n as usize;
                // SAFETY: recv initialized the first `n` bytes (n <= capacity).
                unsafe { self.buf.set_len(n) };
                return Ok(Some(n));
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if nonblocking => return Ok(None),
                _ => {
                    return Err(NlError::Io {
                        context: "reading from nf_tables",
                        err,
                    })
                }
            }
        }
    }

    /// Sends a batch and waits for its end: the ACK of its last message
    /// ([`EncodedBatch::ack_seq`], see [`super::encode::Batch::new`]) or the first error
    /// of one of its messages, whichever comes first. The kernel handles the batch
    /// synchronously inside `sendto` and queues its replies in message order, so by the
    /// time it returns every answer is queued; the first error (if any) is returned. A
    /// batch without an ACK asked (`ack_seq` `None`) reads what is queued without waiting.
    pub fn transact(&mut self, batch: &EncodedBatch) -> Result<(), NlError> {
        self.send(&batch.bytes)?;
        let mut first_err: Option<ErrorMsg> = None;
        let in_batch = |seq: u32| seq.wrapping_sub(batch.first_seq.wrapping_sub(1)) <= batch.messages + 1;
        let mut ended = batch.ack_seq.is_none();
        while !ended && first_err.is_none() {
            let Some(n) = self.recv(false)? else { continue };
            for m in decode::messages(&self.buf[..n])? {
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let e = decode::error_msg(&m)?;
                if !in_batch(e.seq) {
                    continue;
                }
                if e.errno != 0 {
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                } else if Some(e.seq) == batch.ack_seq {
                    ended = true;
                }
            }
        }
        // Drain what else the kernel queued for this batch (more errors, later ACKs) so
        // the socket is clean; the first error is the one that explains the failure.
        while let Some(n) = self.recv(true)? {
            for m in decode::messages(&self.buf[..n]).unwrap_or_default() {
                if m.ty == NLMSG_ERROR {
                    if let Ok(e) = decode::error_msg(&m) {
                        if e.errno != 0 && first_err.is_none() && in_batch(e.seq) {
                            first_err = Some(e);
                        }
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(NlError::Kernel(e)),
            None => Ok(()),
        }
    }

    /// Sends one nf_tables request (`msg` with `attrs` already encoded) and returns every
    /// reply message byte for byte until the dump ends or the single answer arrives.
    pub fn request(&mut self, msg: u16, flags: u16, attrs: &[u8]) -> Result<Vec<u8>, NlError> {
        self.request_family(NFPROTO_INET, msg, flags, attrs)
    }

    /// [`Socket::request`] for tables of nf_tables family `family` (`NFPROTO_*`).
    pub fn request_family(&mut self, family: u8, msg: u16, flags: u16, attrs: &[u8]) -> Result<Vec<u8>, NlError> {
        let mut header = vec![family, NFNETLINK_V0, 0, 0];
        header.extend_from_slice(attrs);
        self.raw_request((u16::from(NFNL_SUBSYS_NFTABLES_ID) << 8) | msg, flags, &header)
    }

    /// Sends message type `ty` with `body` (family header and attributes) and returns
    /// every reply message byte for byte until the dump ends or the single answer arrives.
    pub fn raw_request(&mut self, ty: u16, flags: u16, body: &[u8]) -> Result<Vec<u8>, NlError> {
        let seq = next_seq(1);
        let mut req = Vec::with_capacity(16 + body.len());
        let len = (16 + body.len()) as u32;
        req.extend_from_slice(&len.to_ne_bytes());
        req.extend_from_slice(&ty.to_ne_bytes());
        let dump = flags & NLM_F_DUMP != 0;
        // Dumps end with NLMSG_DONE; a single GET ends with the ACK asked for here (ACKs on
        // dumps differ between kernel versions, so they are not requested).
        let ack = if dump { 0 } else { NLM_F_ACK };
        req.extend_from_slice(&(NLM_F_REQUEST | ack | flags).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        self.send(&req)?;
        let mut out = Vec::new();
        loop {
            let Some(n) = self.recv(false)? else { continue };
            let mut done = false;
            for m in decode::messages(&self.buf[..n])? {
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    NLMSG_DONE => done = true,
                    NLMSG_ERROR => {
                        let e = decode::error_msg(&m)?;
                        if e.errno != 0 {
                            return Err(NlError::Kernel(e));
                        }
                        // An ACK ends a non-dump request (dumps end with NLMSG_DONE).
                        if !dump {
                            done = true;
                        }
                    }
                    _ => {
                        let total = 16 + m.payload.len();
                        // The header as one piece: five small copies per message were as
                        // many calls into musl's memcpy (issue #18).
                        let mut h = [0u8; 16];
                        h[..4].copy_from_slice(&(total as u32).to_ne_bytes());
                        h[4..6].copy_from_slice(&m.ty.to_ne_bytes());
                        h[6..8].copy_from_slice(&m.flags.to_ne_bytes());
                        h[8..12].copy_from_slice(&m.seq.to_ne_bytes());
                        out.reserve(total + 3);
                        out.extend_from_slice(&h);
                        out.extend_from_slice(m.payload);
                        while out.len() & 3 != 0 {
                            out.push(0);
                        }
                    }
                }
            }
            if done {
                return Ok(out);
            }
        }
    }
}

fn unsafe_zeroed_sockaddr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Encodes request attributes: NUL-terminated strings.
pub fn str_attrs(pairs: &[(u16, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ty, s) in pairs {
        let len = (4 + s.len() + 1) as u16;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
        while out.len() & 3 != 0 {
            out.push(0);
        }
    }
    out
}
