//! Shared by every golden test: the sample policies all platforms render, and the
//! golden-file comparison. Set `UPDATE_GOLDEN=1` to rewrite files after an intended
//! change, then review the diff.
#![allow(dead_code)]

use std::path::PathBuf;

use cordon_policy::{AllowSpec, Policy};

/// The one set of policies that the Linux, Windows and macOS golden tests all render.
pub fn sample_policies() -> Vec<(&'static str, Policy)> {
    let server_v4_v6 = || {
        Policy::builder()
            .server("192.0.2.1:8443".parse().unwrap())
            .server("[2001:db8:c0::1]:8443".parse().unwrap())
            .resolver("192.0.2.53".parse().unwrap())
            .resolver("2001:db8:c0::53".parse().unwrap())
            .dhcp(true)
    };
    let hostname = AllowSpec::parse("https://updates.example:443").unwrap();
    let cidr = AllowSpec::parse("198.51.100.0/24").unwrap();
    let syslog6 = AllowSpec::parse("udp://[2001:db8:2::9]:514").unwrap();
    vec![
        ("server-v4-v6", server_v4_v6().build()),
        (
            "hostname-several-addresses",
            server_v4_v6()
                .allow_spec(
                    &hostname,
                    &[
                        "198.51.100.10".parse().unwrap(),
                        "198.51.100.11".parse().unwrap(),
                        "2001:db8:1::10".parse().unwrap(),
                    ],
                )
                .build(),
        ),
        (
            "cidr-exception",
            server_v4_v6().allow_spec(&cidr, &[]).allow_spec(&syslog6, &[]).build(),
        ),
        (
            "no-dns",
            Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .server("[2001:db8:c0::1]:8443".parse().unwrap())
                .dhcp(true)
                .build(),
        ),
        (
            "dhcp-servers",
            Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .dhcp(true)
                .dhcp_server("192.0.2.67".parse().unwrap())
                .dhcp_server("2001:db8:c0::67".parse().unwrap())
                .build(),
        ),
        (
            // `--server udp://…:1514` (a Wazuh agent in UDP mode) next to a TCP server:
            // outbound UDP to the manager, in the UDP destinations.
            "udp-server",
            Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .udp_server("192.0.2.30:1514".parse().unwrap())
                .udp_server("[2001:db8:c0::30]:1514".parse().unwrap())
                .resolver("192.0.2.53".parse().unwrap())
                .dhcp(false)
                .build(),
        ),
        (
            "no-dhcp",
            Policy::builder()
                .server("192.0.2.1:8443".parse().unwrap())
                .resolver("192.0.2.53".parse().unwrap())
                .dhcp(false)
                .build(),
        ),
    ]
}

pub fn check_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("missing golden file {} ({e}); run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        actual,
        expected,
        "rendering differs from golden file {}",
        path.display()
    );
}
