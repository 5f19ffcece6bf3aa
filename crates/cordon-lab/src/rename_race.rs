//! The rename case of `cordon bench tamper` (trial31 HIGH-F): an attacker in the endpoint
//! takes the uplink down, renames it, brings it up and at once sends raw UDP frames to the
//! other host through a packet socket bound by interface index (the name does not matter
//! to it), for 30 ms, then waits 50 ms, and again. The kernel keeps netdev hooks on a
//! name, so each rename takes the uplink off Cordon's hooks until the new name is hooked.
//! What is measured is the share of the frames the sender tried that reached the other
//! host (counted by a UDP socket there).
//!
//! rtnetlink and the packet socket are spoken through `libc` directly: two requests
//! (`RTM_NEWLINK` with flags or a name) and `sendto(2)` on an `AF_PACKET` socket, which no
//! maintained crate wraps more simply than this.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::lab::{addr, netns, Host, Lab};

/// UDP port of the other host the frames are addressed to.
const PORT: u16 = 7793;
/// The marker the counter looks for.
const MARKER: &[u8] = b"cordon-bench-rename";

/// What one rename loop saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leak {
    /// Frames the sender tried (every `sendto`).
    pub tried: usize,
    /// Frames the kernel took (the egress hook refuses the rest).
    pub passed: usize,
    /// Frames that reached the other host.
    pub arrived: usize,
}

impl Leak {
    /// `arrived / tried` in percent (and `passed / tried`), as the table prints it.
    pub fn cell(&self) -> String {
        if self.tried == 0 {
            return "no frame tried".into();
        }
        let pct = |n: usize| 100.0 * n as f64 / self.tried as f64;
        format!("{:.2}% out ({:.2}% sent)", pct(self.arrived), pct(self.passed))
    }
}

/// Runs `cycles` down/rename/up cycles of the endpoint's uplink (named `eth0`, renamed
/// to `cdnr0` and back) while whatever watcher the caller started runs, and counts.
/// Leaves the uplink named `eth0` and up.
pub fn run(lab: &Lab, cycles: usize) -> Result<Leak> {
    let other = lab.ns(Host::Other);
    let stop = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicUsize::new(0));
    let sock: UdpSocket = netns::run_in(&other, move || {
        let s = UdpSocket::bind(SocketAddr::new(addr::OTHER4.into(), PORT))?;
        s.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(s)
    })?;
    let (flag, count) = (stop.clone(), arrived.clone());
    let counter = std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].starts_with(MARKER) {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    });
    let dst = mac(lab, Host::Other)?;
    let src = mac(lab, Host::Endpoint)?;
    let sent = netns::run_in(&lab.ns(Host::Endpoint), move || race(cycles, src, dst));
    // Late frames are counted too.
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let _ = counter.join();
    let (tried, passed) = sent?;
    Ok(Leak {
        tried,
        passed,
        arrived: arrived.load(Ordering::Relaxed),
    })
}

fn mac(lab: &Lab, host: Host) -> Result<[u8; 6]> {
    let out = lab.exec(host, &["cat", "/sys/class/net/eth0/address"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = [0u8; 6];
    let parts: Vec<&str> = text.trim().split(':').collect();
    if parts.len() != 6 {
        bail!("cannot read the MAC address of eth0: {text:?}");
    }
    for (i, p) in parts.iter().enumerate() {
        m[i] = u8::from_str_radix(p, 16).context("a MAC address byte")?;
    }
    Ok(m)
}

/// The cycles, in the endpoint's namespace: (frames tried, frames the kernel took).
fn race(cycles: usize, src: [u8; 6], dst: [u8; 6]) -> Result<(usize, usize)> {
    let ifindex = index_of("eth0")?;
    let rt = Fd::new(
        // SAFETY: plain socket(2); checked by Fd::new.
        unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        },
        "rtnetlink socket",
    )?;
    let pkt = Fd::new(
        // SAFETY: plain socket(2); checked by Fd::new.
        unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) },
        "packet socket",
    )?;
    let frame = frame(src, dst);
    // SAFETY: sockaddr_ll is plain old data.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = 0x0800u16.to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&dst);
    let names = ["cdnr0", "eth0"];
    let (mut tried, mut passed) = (0, 0);
    let mut seq = 1;
    let mut result = Ok(());
    for c in 0..cycles {
        let step = setlink(&rt, &mut seq, ifindex, Some(false), None)
            .and_then(|_| setlink(&rt, &mut seq, ifindex, None, Some(names[c % 2])))
            .and_then(|_| setlink(&rt, &mut seq, ifindex, Some(true), None));
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(30) {
            tried += 1;
            // SAFETY: frame and `to` outlive the call; the lengths are theirs.
            let n = unsafe {
                libc::sendto(
                    pkt.0,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if n > 0 {
                passed += 1;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Back to `eth0`, up, whatever happened.
    let _ = setlink(&rt, &mut seq, ifindex, Some(false), None);
    let _ = setlink(&rt, &mut seq, ifindex, None, Some("eth0"));
    let _ = setlink(&rt, &mut seq, ifindex, Some(true), None);
    result.map(|()| (tried, passed))
}

/// An owned file descriptor, closed on drop.
struct Fd(i32);

impl Fd {
    fn new(fd: i32, what: &str) -> Result<Fd> {
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context(format!("opening a {what}"));
        }
        Ok(Fd(fd))
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

fn index_of(name: &str) -> Result<u32> {
    let c = std::ffi::CString::new(name)?;
    // SAFETY: a valid NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        bail!("no interface {name} in the endpoint");
    }
    Ok(i)
}

/// `RTM_NEWLINK` for `ifindex`: up or down (`up`), or a new name; waits for the kernel's
/// answer.
fn setlink(fd: &Fd, seq: &mut u32, ifindex: u32, up: Option<bool>, name: Option<&str>) -> Result<()> {
    let mut body = Vec::with_capacity(48);
    // struct ifinfomsg: family, pad, type, index, flags, change.
    body.extend_from_slice(&[0u8, 0, 0, 0]);
    body.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    let flags = if up == Some(true) { libc::IFF_UP as u32 } else { 0 };
    let change = if up.is_some() { libc::IFF_UP as u32 } else { 0 };
    body.extend_from_slice(&flags.to_ne_bytes());
    body.extend_from_slice(&change.to_ne_bytes());
    if let Some(n) = name {
        let len = 4 + n.len() + 1;
        body.extend_from_slice(&(len as u16).to_ne_bytes());
        body.extend_from_slice(&libc::IFLA_IFNAME.to_ne_bytes());
        body.extend_from_slice(n.as_bytes());
        body.push(0);
        while body.len() % 4 != 0 {
            body.push(0);
        }
    }
    *seq += 1;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
    msg.extend_from_slice(&libc::RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    msg.extend_from_slice(&seq.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&body);
    // SAFETY: msg is a valid buffer of its length.
    if unsafe { libc::send(fd.0, msg.as_ptr().cast(), msg.len(), 0) } < 0 {
        return Err(std::io::Error::last_os_error()).context("sending RTM_NEWLINK");
    }
    let mut buf = [0u8; 1024];
    // SAFETY: buf is a valid buffer of its length.
    let n = unsafe { libc::recv(fd.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 20 {
        bail!("no answer to RTM_NEWLINK");
    }
    let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if err != 0 {
        return Err(std::io::Error::from_raw_os_error(-err)).context("RTM_NEWLINK refused");
    }
    Ok(())
}

/// Ethernet / IPv4 / UDP from the endpoint to the other host's [`PORT`], carrying
/// [`MARKER`].
fn frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&0x0800u16.to_be_bytes());
    let total = (20 + 8 + MARKER.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 7, 0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&addr::ENDPOINT4.octets());
    ip.extend_from_slice(&addr::OTHER4.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&40001u16.to_be_bytes());
    f.extend_from_slice(&PORT.to_be_bytes());
    f.extend_from_slice(&((8 + MARKER.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(MARKER);
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_ipv4_udp_to_the_other_host_with_a_valid_header_checksum() {
        let f = frame([2; 6], [4; 6]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(checksum(&f[14..34]), 0, "a header with its checksum sums to zero");
        assert_eq!(&f[30..34], &addr::OTHER4.octets());
        assert!(f.ends_with(MARKER));
    }
}
