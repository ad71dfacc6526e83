//! Latchkey: an administrator resets a domain user's password; Latchkey checks it against every
//! directory's policy, sets it in each directory through sandboxed connector plugins, and seals
//! it to the user's hardware key. See ARCHITECTURE.md for the map.

pub mod agent;
pub mod api;
pub mod capabilities;
pub mod cli;
pub mod conformance;
pub mod delivery;
#[doc(hidden)]
pub mod fuzzing;
pub mod runtime;
pub mod scaffold;
mod slots;
pub mod store;
pub mod web;
pub mod workflow;
