//! Finding the DHCP servers a host uses from its DHCP clients' lease files (design §3
//! point 4: the DHCP ports may only reach the host's own servers). Pure parsers; the
//! engine reads the files.
//!
//! Formats understood (the server address each one records):
//! * ISC dhclient (`/var/lib/dhcp/*.leases`, also NetworkManager's `dhclient-*.lease`):
//!   `option dhcp-server-identifier 192.0.2.67;` inside `lease { … }` blocks; the last
//!   lease of each interface counts, older ones are history.
//! * systemd-networkd (`/run/systemd/netif/leases/<ifindex>`) and NetworkManager's
//!   internal client (`/var/lib/NetworkManager/internal-*.lease`): `SERVER_ADDRESS=…`.
//! * dhcpcd (`/var/lib/dhcpcd/*.lease`): the raw DHCP message (RFC 2131 §2), option 54.
//!
//! Hand-written because no maintained crate parses these formats, and each parser is a
//! few lines over the documented field.

use std::net::IpAddr;

/// Server addresses found in one lease file's contents, in file order, unique.
/// Unknown formats yield nothing.
pub fn servers(bytes: &[u8]) -> Vec<IpAddr> {
    let mut out = Vec::new();
    if let Some(ip) = dhcpcd_server(bytes) {
        out.push(ip);
        return out;
    }
    let text = String::from_utf8_lossy(bytes);
    if text.contains("lease {") || text.contains("lease6 {") {
        out = dhclient_servers(&text);
    } else {
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("SERVER_ADDRESS=") {
                if let Ok(ip) = v.trim().parse::<IpAddr>() {
                    push_unique(&mut out, ip);
                }
            }
        }
    }
    out
}

/// The `dhcp-server-identifier` of the last lease of each interface in dhclient's
/// lease-file text.
pub fn dhclient_servers(text: &str) -> Vec<IpAddr> {
    // (interface, server) of every complete lease block, in order.
    let mut leases: Vec<(String, Option<IpAddr>)> = Vec::new();
    let mut current: Option<(String, Option<IpAddr>)> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("lease {") || line.starts_with("lease6 {") {
            current = Some((String::new(), None));
        } else if line == "}" {
            if let Some(done) = current.take() {
                leases.push(done);
            }
        } else if let Some((iface, server)) = current.as_mut() {
            if let Some(rest) = line.strip_prefix("interface ") {
                *iface = rest.trim_end_matches(';').trim_matches('"').to_string();
            } else if let Some(rest) = line.strip_prefix("option dhcp-server-identifier ") {
                *server = rest.trim_end_matches(';').trim().parse().ok();
            }
        }
    }
    let mut last: Vec<(String, IpAddr)> = Vec::new();
    for (iface, server) in leases {
        let Some(server) = server else { continue };
        match last.iter_mut().find(|(i, _)| *i == iface) {
            Some(entry) => entry.1 = server,
            None => last.push((iface, server)),
        }
    }
    let mut out = Vec::new();
    for (_, s) in last {
        push_unique(&mut out, s);
    }
    out
}

/// Option 54 (server identifier) of a raw BOOTP/DHCP message as dhcpcd stores it:
/// 236 fixed bytes, the magic cookie 99.130.83.99, then tag-length-value options.
pub fn dhcpcd_server(msg: &[u8]) -> Option<IpAddr> {
    const COOKIE: [u8; 4] = [99, 130, 83, 99];
    if msg.len() < 240 || msg[0] != 2 || msg[236..240] != COOKIE {
        return None;
    }
    let mut i = 240;
    while i < msg.len() {
        let tag = msg[i];
        match tag {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let len = *msg.get(i + 1)? as usize;
        let value = msg.get(i + 2..i + 2 + len)?;
        if tag == 54 && len == 4 {
            return Some(IpAddr::from([value[0], value[1], value[2], value[3]]));
        }
        i += 2 + len;
    }
    None
}

fn push_unique(out: &mut Vec<IpAddr>, ip: IpAddr) {
    if !out.contains(&ip) {
        out.push(ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhclient_last_lease_per_interface_counts() {
        let text = r#"
lease {
  interface "eth0";
  fixed-address 192.0.2.10;
  option dhcp-server-identifier 192.0.2.66;
  renew 4 2026/11/26 10:00:00;
}
lease {
  interface "eth0";
  fixed-address 192.0.2.10;
  option subnet-mask 255.255.255.0;
  option dhcp-server-identifier 192.0.2.67;
}
lease {
  interface "eth1";
  option dhcp-server-identifier 198.51.100.1;
}
"#;
        assert_eq!(
            servers(text.as_bytes()),
            vec!["192.0.2.67".parse::<IpAddr>().unwrap(), "198.51.100.1".parse().unwrap()]
        );
    }

    #[test]
    fn networkd_and_nm_internal_leases() {
        let text = "# This is private data. Do not parse.\nADDRESS=192.0.2.10\nSERVER_ADDRESS=192.0.2.67\nROUTER=192.0.2.254\n";
        assert_eq!(servers(text.as_bytes()), vec!["192.0.2.67".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn dhcpcd_raw_message_option_54() {
        let mut msg = vec![0u8; 240];
        msg[0] = 2;
        msg[236..240].copy_from_slice(&[99, 130, 83, 99]);
        msg.extend_from_slice(&[53, 1, 5, 0, 54, 4, 192, 0, 2, 67, 255]);
        assert_eq!(servers(&msg), vec!["192.0.2.67".parse::<IpAddr>().unwrap()]);
        // Truncated options: nothing, no panic.
        msg.truncate(246);
        assert_eq!(dhcpcd_server(&msg), None);
    }

    #[test]
    fn junk_yields_nothing() {
        assert!(servers(b"").is_empty());
        assert!(servers(b"lease {\n option dhcp-server-identifier bogus;\n}\n").is_empty());
        assert!(servers(&[0xff; 300]).is_empty());
    }
}
