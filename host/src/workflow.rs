//! `workflow`: the password-change workflow's pure parts and the host's own history — what a
//! password must satisfy (the merged policy of every enabled connector, `policy`), the
//! admin's typed input (`manual`), drawing a password that satisfies the policy
//! (`generator`), checking one independently (`check`), and the argon2id hashes of the
//! passwords set through Latchkey (`history`).
//!
//! It owns the rules about a candidate password. It must never show, log, persist or put in
//! an error any plaintext password (passwords travel as `SecretString`, buffers as
//! `Zeroizing`), touch sqlx (the `store` does) or call a plugin directly (the `runtime` does).

pub mod check;
pub mod generator;
pub mod history;
pub mod manual;
pub mod policy;
