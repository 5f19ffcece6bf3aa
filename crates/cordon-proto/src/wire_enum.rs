//! The two shapes of enum the wire types use for a string field with a known set of
//! values (issue 13: typed fields instead of strings compared by hand):
//!
//! - [`wire_enum!`] — a **closed** set: a value outside it is refused when read (serde
//!   error naming the value and the expected ones; the store turns one into
//!   `StoreError::Corrupt`). For sets that only the server defines and that cannot grow
//!   without a [`crate::PROTO_VERSION`] change.
//! - [`open_wire_enum!`] — a **known** set plus `Other(String)`: a value outside it is
//!   kept as sent, never refused. For sets a newer (or older) peer can extend: an agent's
//!   backend or claim sources, statuses the server writes into a database that replicas
//!   of another version read, kinds a newer server sends to an older CLI. The reason is
//!   written at each use.
//!
//! Both write and read exactly the wire names given (no `rename_all` guessing), and give
//! `as_str`, `Display` and a parser, so code compares variants, not strings. Hand-written
//! as `macro_rules!` because serde has no catch-all for a unit variant holding the
//! unknown name (`#[serde(other)]` drops it), and the two shapes must stay alike.

/// Declares a closed wire enum: `#[serde(rename = …)]` per variant, the OpenAPI schema
/// (an enum of the wire names), `as_str`, `parse`, `ALL` and `Display`.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $wire:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $var, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$var => $wire, )+
                }
            }

            /// Parses a wire name (exactly as written); `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $( $wire => Some($name::$var), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Declares an open wire enum: the known names plus `Other(String)` for any other name,
/// kept as sent. Serialized as the bare wire name; `as_str`, `from_wire`, `parse` (known
/// names only), `KNOWN`, `Display`, `From<&str>`/`From<String>`. In OpenAPI a field of
/// such a type is described as a string (`schema(value_type = String)` at the field),
/// since any string is accepted.
macro_rules! open_wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $var:ident = $wire:tt, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $var, )+
            /// A name this build does not know (sent by a newer or older peer), kept as sent.
            Other(String),
        }

        impl $name {
            /// Every known value, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$var),+];

            /// The wire name (for `Other`, the name as sent).
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$var => $wire, )+
                    $name::Other(s) => s.as_str(),
                }
            }

            /// Parses a known wire name (exactly as written); `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $( $wire => Some($name::$var), )+
                    _ => None,
                }
            }

            /// Any wire name: a known one, or `Other` holding it.
            pub fn from_wire(s: &str) -> $name {
                $name::parse(s).unwrap_or_else(|| $name::Other(s.to_string()))
            }

            /// Whether this is one of the known names.
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> $name {
                $name::from_wire(s)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> $name {
                match $name::parse(&s) {
                    Some(k) => k,
                    None => $name::Other(s),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                <String as serde::Deserialize>::deserialize(d).map($name::from)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

    use serde_json::json;

    use crate::automation::{
        ApprovalStatus, DecisionStatus, Delivery, DeliveryStatus, EventStatus, NotifyKind, OutcomeKind,
    };
    use crate::{Backend, ClaimSource, HostAction, HostFlagKind, StatusReport};

    /// Writes every value and reads it back: the JSON is the wire name, and the
    /// parser, the writer and `as_str` agree (the fault kind: a typed field whose
    /// wire, stored and parsed names disagree).
    fn round_trips<T>(all: &[T], parse: impl Fn(&str) -> Option<T>, name: impl Fn(&T) -> String)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug + std::fmt::Display,
    {
        assert!(!all.is_empty());
        for v in all {
            let wire = name(v);
            assert_eq!(serde_json::to_value(v).unwrap(), json!(wire), "{v:?}");
            assert_eq!(&serde_json::from_value::<T>(json!(wire)).unwrap(), v);
            assert_eq!(parse(&wire).as_ref(), Some(v));
            assert_eq!(v.to_string(), wire);
        }
    }

    #[test]
    fn wire_names_parse_write_and_read_alike() {
        round_trips(ApprovalStatus::ALL, ApprovalStatus::parse, |v| v.as_str().into());
        round_trips(DecisionStatus::ALL, DecisionStatus::parse, |v| v.as_str().into());
        round_trips(DeliveryStatus::ALL, DeliveryStatus::parse, |v| v.as_str().into());
        round_trips(HostAction::ALL, HostAction::parse, |v| v.as_str().into());
        round_trips(Backend::KNOWN, Backend::parse, |v| v.as_str().into());
        round_trips(ClaimSource::KNOWN, ClaimSource::parse, |v| v.as_str().into());
        round_trips(HostFlagKind::KNOWN, HostFlagKind::parse, |v| v.as_str().into());
        round_trips(NotifyKind::KNOWN, NotifyKind::parse, |v| v.as_str().into());
        round_trips(EventStatus::KNOWN, EventStatus::parse, |v| v.as_str().into());
        round_trips(OutcomeKind::KNOWN, OutcomeKind::parse, |v| v.as_str().into());
        assert_eq!(Backend::NetshIpsec.as_str(), "netsh-ipsec");
        assert_eq!(ApprovalStatus::parse("Pending"), None, "names are exact");
    }

    /// The fault kind: a newer agent (or a replica of a newer server) sends a name this
    /// build does not know, and the whole report (or list) is refused. Open sets keep
    /// the name as sent and write it back unchanged.
    #[test]
    fn open_sets_keep_a_name_they_do_not_know() {
        let r: StatusReport = serde_json::from_value(json!({
            "applied_revision": 1, "state": "isolated", "backend": "ebpf",
            "claims": [{"source": "crowdstrike"}, {"source": "wazuh"}]
        }))
        .unwrap();
        assert_eq!(r.backend, Some(Backend::Other("ebpf".into())));
        assert!(!r.backend.as_ref().unwrap().is_known());
        assert_eq!(r.claims[0].source, ClaimSource::Other("crowdstrike".into()));
        assert_eq!(r.claims[1].source, ClaimSource::Wazuh);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["backend"], "ebpf");
        assert_eq!(back["claims"][0]["source"], "crowdstrike");
        assert_eq!(
            NotifyKind::from("host_deleted"),
            NotifyKind::Other("host_deleted".into())
        );
        assert_eq!(NotifyKind::from("tampered".to_string()), NotifyKind::Tampered);
        assert_eq!(EventStatus::from_wire("escalated").as_str(), "escalated");
        assert_eq!(OutcomeKind::from_wire("quota").to_string(), "quota");
    }

    /// Closed sets refuse any other name, and the error names it and what is expected.
    #[test]
    fn closed_sets_refuse_other_names_saying_what_is_expected() {
        let err = serde_json::from_value::<DeliveryStatus>(json!("paused"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("paused") && err.contains("pending") && err.contains("dead"),
            "{err}"
        );
        let d = json!({"id": 1, "target_id": 1, "audit_id": 1, "kind": "quarantined", "status": "gone",
            "attempts": 0, "next_attempt_at": null, "last_error": null, "delivered_at": null,
            "created_at": "2030-01-01T00:00:00Z", "payload": {}});
        assert!(serde_json::from_value::<Delivery>(d).is_err());
        assert_eq!(HostAction::parse("isolate"), None);
    }
}
