//! The adapters' DNS servers on Windows, read with `GetAdaptersAddresses`; which of them
//! count as resolvers is decided by the pure `cordon_policy::windns::resolvers`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use cordon_policy::windns::AdapterDns;
use windows_sys::Win32::Foundation::{ERROR_BUFFER_OVERFLOW, ERROR_SUCCESS};
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GetAdaptersAddresses, GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_MULTICAST, GAA_FLAG_SKIP_UNICAST,
    IF_TYPE_SOFTWARE_LOOPBACK, IP_ADAPTER_ADDRESSES_LH,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6, AF_UNSPEC, SOCKADDR, SOCKADDR_IN, SOCKADDR_IN6};

/// Every adapter with its DNS servers; empty when the call fails.
pub fn adapter_dns() -> Vec<AdapterDns> {
    let flags = GAA_FLAG_SKIP_UNICAST | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST;
    // u64 elements keep the buffer 8-byte aligned, as the structures need.
    let mut size: u32 = 16 * 1024;
    let mut buf: Vec<u64> = Vec::new();
    for _ in 0..4 {
        buf = vec![0u64; (size as usize).div_ceil(8)];
        // SAFETY: `buf` holds `size` writable bytes, aligned for IP_ADAPTER_ADDRESSES_LH.
        let rc = unsafe {
            GetAdaptersAddresses(
                u32::from(AF_UNSPEC),
                flags,
                std::ptr::null(),
                buf.as_mut_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => return walk(buf.as_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>()),
            ERROR_BUFFER_OVERFLOW => continue, // `size` now says how much is needed
            _ => return Vec::new(),
        }
    }
    drop(buf);
    Vec::new()
}

fn walk(mut adapter: *const IP_ADAPTER_ADDRESSES_LH) -> Vec<AdapterDns> {
    let mut out = Vec::new();
    while !adapter.is_null() {
        // SAFETY: a node of the list GetAdaptersAddresses wrote into our live buffer.
        let a = unsafe { &*adapter };
        let mut dns_servers = Vec::new();
        let mut server = a.FirstDnsServerAddress;
        while !server.is_null() {
            // SAFETY: a node of the adapter's DNS server list, inside the same buffer.
            let s = unsafe { &*server };
            if let Some(ip) = sockaddr_ip(s.Address.lpSockaddr) {
                dns_servers.push(ip);
            }
            server = s.Next;
        }
        out.push(AdapterDns {
            name: wide_to_string(a.FriendlyName),
            up: a.OperStatus == IfOperStatusUp,
            loopback: a.IfType == IF_TYPE_SOFTWARE_LOOPBACK,
            dns_servers,
        });
        adapter = a.Next;
    }
    out
}

fn sockaddr_ip(sa: *const SOCKADDR) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: non-null sockaddr from the API; its family says which structure it is.
    unsafe {
        match (*sa).sa_family {
            AF_INET => {
                let sin = &*(sa.cast::<SOCKADDR_IN>());
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.S_un.S_addr))))
            }
            AF_INET6 => {
                let sin6 = &*(sa.cast::<SOCKADDR_IN6>());
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.u.Byte)))
            }
            _ => None,
        }
    }
}

fn wide_to_string(p: *const u16) -> String {
    if p.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: FriendlyName is a NUL-terminated UTF-16 string inside the API's buffer.
    unsafe {
        while *p.add(len) != 0 {
            len += 1;
        }
        String::from_utf16_lossy(std::slice::from_raw_parts(p, len))
    }
}
