//! The emulator driven over HTTP as Latchkey's Graph client will drive it (reqwest), plus the
//! password hash sync against the real Samba AD DC.

mod faults;
mod password_reset;
mod phs;
mod support;
mod token;
mod users;
