//! The quarantine policy of Cordon (design §3) as plain data, plus everything that can be
//! done to it without touching the operating system: parsing `--allow` specs, validating
//! names and messages, and rendering the policy into each firewall's own language.
//!
//! Nothing in this crate performs I/O; resolution of host names happens in the caller,
//! which hands back addresses through [`Policy::builder`].

pub mod dhcplease;
pub mod error;
pub mod message;
pub mod model;
pub mod render;
pub mod resolvconf;
pub mod scutil;
pub mod spec;
pub mod windns;

pub use error::PolicyError;
pub use model::{Exception, Policy, PolicyBuilder, TableName};
pub use spec::{AllowSpec, Target, Transport};
