//! Time helpers (they live in cordon-proto so API clients share them).

pub use cordon_proto::timefmt::*;
