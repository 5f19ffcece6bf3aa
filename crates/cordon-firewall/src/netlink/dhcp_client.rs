//! Which `ETH_P_ALL` packet sockets belong to DHCP clients (trial31 MED-B): judged by what
//! a process cannot set for itself with `prctl(PR_SET_NAME)` — the executable it runs
//! (`/proc/PID/exe`, one of [`KNOWN_DHCP_CLIENT_EXES`]) and the socket's own shape: the
//! classic BPF filter attached to it (`SO_ATTACH_FILTER`, read back with `sock_diag`'s
//! `PACKET_DIAG_FILTER`) must pass a DHCPv4 reply and refuse other frames (a UDP datagram
//! to another port, TCP, ARP, IPv6), as ISC dhclient's and dhcpcd's filters do. A
//! socket with no filter reads every frame, whoever holds it.
//!
//! What this trusts, and `status` says so: a root process can still run its own code
//! inside such a binary (`LD_PRELOAD`, ptrace) or replace the binary on disk; what it
//! reads through a DHCP-shaped filter is DHCP replies only.
//!
//! Hand-written: the `sock_diag` request is one fixed-size record on the module's netlink
//! socket, and the classic BPF interpreter runs a filter over four sample frames; no
//! crate offers either without a packet-capture stack.

use super::decode::{self, attrs};
use super::socket::{NlError, Socket};

/// Executables of DHCP clients, as `/proc/PID/exe` names them (the kernel resolves
/// symlinks, so merged-/usr systems show the `/usr` path).
pub const KNOWN_DHCP_CLIENT_EXES: [&str; 10] = [
    "/usr/sbin/dhclient",
    "/sbin/dhclient",
    "/usr/sbin/dhcpcd",
    "/sbin/dhcpcd",
    "/usr/lib/systemd/systemd-networkd",
    "/lib/systemd/systemd-networkd",
    "/usr/sbin/NetworkManager",
    "/usr/bin/NetworkManager",
    "/usr/libexec/nm-dhcp-helper",
    "/usr/lib/NetworkManager/nm-dhcp-helper",
];

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when true.
    pub jt: u8,
    /// Jump offset when false.
    pub jf: u8,
    /// Constant.
    pub k: u32,
}

/// Reads `struct sock_filter` records (8 bytes each, host order).
pub fn parse_filter(b: &[u8]) -> Vec<Insn> {
    b.chunks_exact(8)
        .map(|c| Insn {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Runs classic BPF program `prog` over `frame` as the kernel does for a packet socket
/// (`SOCK_RAW`: the frame from its Ethernet header on); returns how many bytes it
/// accepts (0: refused). `None` for what this interpreter does not run (ancillary
/// loads at negative offsets, an unknown opcode, a jump out of the program): then the
/// filter is not judged DHCP-shaped.
pub fn run(prog: &[Insn], frame: &[u8]) -> Option<u32> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    let load = |at: u32, size: usize| -> Option<Option<u32>> {
        // Some(None): out of the frame (the kernel then returns 0: refused).
        if (at as i32) < 0 {
            return None;
        }
        let at = at as usize;
        let Some(b) = frame.get(at..at + size) else {
            return Some(None);
        };
        Some(Some(b.iter().fold(0u32, |v, byte| (v << 8) | u32::from(*byte))))
    };
    for _ in 0..=prog.len() {
        let i = *prog.get(pc)?;
        pc += 1;
        let class = i.code & 0x07;
        let size = match i.code & 0x18 {
            0x00 => 4,
            0x08 => 2,
            _ => 1,
        };
        let src = if i.code & 0x08 != 0 { x } else { i.k };
        match class {
            // BPF_LD, BPF_LDX
            0x00 | 0x01 => {
                let v = match i.code & 0xe0 {
                    0x00 => i.k, // IMM
                    0x20 => match load(i.k, size)? {
                        // ABS
                        Some(v) => v,
                        None => return Some(0),
                    },
                    0x40 => match load(x.wrapping_add(i.k), size)? {
                        // IND
                        Some(v) => v,
                        None => return Some(0),
                    },
                    0x60 => *mem.get(i.k as usize)?, // MEM
                    0x80 => frame.len() as u32,      // LEN
                    0xa0 if class == 0x01 => match load(i.k, 1)? {
                        // MSH
                        Some(v) => (v & 0x0f) * 4,
                        None => return Some(0),
                    },
                    _ => return None,
                };
                if class == 0x00 {
                    a = v;
                } else {
                    x = v;
                }
            }
            0x02 => *mem.get_mut(i.k as usize)? = a, // ST
            0x03 => *mem.get_mut(i.k as usize)? = x, // STX
            // BPF_ALU
            0x04 => {
                let s = if i.code & 0x08 != 0 { x } else { i.k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(s),
                    0x10 => a.wrapping_sub(s),
                    0x20 => a.wrapping_mul(s),
                    0x30 => a.checked_div(s).unwrap_or(0),
                    0x40 => a | s,
                    0x50 => a & s,
                    0x60 => a.checked_shl(s).unwrap_or(0),
                    0x70 => a.checked_shr(s).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(s).unwrap_or(0),
                    0xa0 => a ^ s,
                    _ => return None,
                };
            }
            // BPF_JMP
            0x05 => {
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc = pc.checked_add(i.k as usize)?;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    _ => return None,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            // BPF_RET
            0x06 => {
                return Some(match i.code & 0x18 {
                    0x00 => i.k,
                    0x10 => a,
                    _ => return None,
                })
            }
            // BPF_MISC: TAX, TXA
            _ => {
                if i.code & 0xf8 == 0x00 {
                    x = a;
                } else {
                    a = x;
                }
            }
        }
    }
    None
}

/// An Ethernet frame carrying IPv4/UDP `sport` → `dport` with `payload` (checksum 0).
fn udp4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0, 192, 0, 2, 67, 255, 255, 255, 255]);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A BOOTREPLY (op 2, Ethernet, xid 0, DHCP magic cookie, DHCPOFFER).
fn bootreply() -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 2;
    b[1] = 1;
    b[2] = 6;
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, 2, 255]);
    b
}

/// Whether filter `prog` passes a DHCPv4 reply (UDP 67 → 68) and refuses a UDP datagram
/// to another port (7777, and 68 → 67, a request), a TCP segment, an ARP frame and an
/// IPv6 frame: the shape of a DHCP client's socket, which reads DHCP replies only.
pub fn dhcp_shaped(prog: &[Insn]) -> bool {
    let reply = udp4(67, 68, &bootreply());
    if !matches!(run(prog, &reply), Some(n) if n > 0) {
        return false;
    }
    let mut tcp = udp4(40000, 80, &[0u8; 40]);
    tcp[23] = 6;
    let mut arp = udp4(0, 0, &[0u8; 8]);
    arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut v6 = udp4(547, 546, &bootreply());
    v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let others = [
        udp4(40000, 7777, &bootreply()),
        udp4(68, 67, &bootreply()),
        tcp,
        arp,
        v6,
    ];
    others.iter().all(|f| run(prog, f) == Some(0))
}

// linux/sock_diag.h, linux/packet_diag.h.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const PACKET_SHOW_FILTER: u32 = 0x20;
const PACKET_DIAG_FILTER: u16 = 7;

/// The classic BPF filters of this network namespace's packet sockets, by socket inode
/// (`sock_diag` dump of `AF_PACKET` with `PACKET_SHOW_FILTER`); a socket without a filter
/// is absent.
///
/// # Errors
/// `NlError` when the dump fails (a kernel without `CONFIG_PACKET_DIAG` refuses it).
pub fn packet_filters() -> Result<std::collections::BTreeMap<u64, Vec<Insn>>, NlError> {
    let mut s = Socket::open_protocol(libc::NETLINK_SOCK_DIAG)?;
    // struct packet_diag_req: sdiag_family, sdiag_protocol, pad, pdiag_ino, pdiag_show,
    // pdiag_cookie[2].
    let mut req = vec![0u8; 20];
    req[0] = libc::AF_PACKET as u8;
    req[8..12].copy_from_slice(&PACKET_SHOW_FILTER.to_ne_bytes());
    let reply = s.raw_request(SOCK_DIAG_BY_FAMILY, libc::NLM_F_DUMP as u16, &req)?;
    let mut out = std::collections::BTreeMap::new();
    for m in decode::data_msgs(&reply)? {
        // struct packet_diag_msg: family, type, num, ino, cookie[2]; then attributes.
        let Some(h) = m.payload.get(..16) else { continue };
        let ino = u64::from(u32::from_ne_bytes([h[4], h[5], h[6], h[7]]));
        for (t, d) in attrs(&m.payload[16..])? {
            if t == PACKET_DIAG_FILTER {
                out.insert(ino, parse_filter(d));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
        Insn { code, jt, jf, k }
    }

    /// ISC dhclient's LPF filter (common/lpf.c, dhcp_bpf_filter): IPv4, UDP, not a
    /// fragment, destination port 68.
    fn dhclient_filter() -> Vec<Insn> {
        vec![
            i(0x28, 0, 0, 12),       // ldh [12]
            i(0x15, 0, 8, 0x0800),   // jeq #0x800
            i(0x30, 0, 0, 23),       // ldb [23]
            i(0x15, 0, 6, 17),       // jeq #17
            i(0x28, 0, 0, 20),       // ldh [20]
            i(0x45, 4, 0, 0x1fff),   // jset #0x1fff
            i(0xb1, 0, 0, 14),       // ldxb 4*([14]&0xf)
            i(0x48, 0, 0, 16),       // ldh [x+16]
            i(0x15, 0, 1, 68),       // jeq #68
            i(0x06, 0, 0, u32::MAX), // ret #-1
            i(0x06, 0, 0, 0),        // ret #0
        ]
    }

    #[test]
    fn dhclients_filter_is_dhcp_shaped_and_others_are_not() {
        assert!(dhcp_shaped(&dhclient_filter()));
        // Accept everything (`ret #-1`), and no filter at all (empty): not DHCP-shaped.
        assert!(!dhcp_shaped(&[i(0x06, 0, 0, u32::MAX)]));
        assert!(!dhcp_shaped(&[]));
        // Port 68 or anything UDP: passes the reply but also the datagram to 7777.
        let mut any_udp = dhclient_filter();
        any_udp[8] = i(0x15, 0, 0, 68);
        assert!(!dhcp_shaped(&any_udp));
        // An ancillary load (negative offset) is not run: not judged DHCP-shaped.
        let mut anc = dhclient_filter();
        anc[0] = i(0x28, 0, 0, 0xffff_f000);
        assert!(!dhcp_shaped(&anc));
    }

    #[test]
    fn filters_parse_from_sock_filter_records() {
        let mut b = Vec::new();
        for x in dhclient_filter() {
            b.extend_from_slice(&x.code.to_ne_bytes());
            b.push(x.jt);
            b.push(x.jf);
            b.extend_from_slice(&x.k.to_ne_bytes());
        }
        assert_eq!(parse_filter(&b), dhclient_filter());
    }
}
