//! The application registered in the emulated tenant — the one Latchkey's connector signs in
//! as — with the application permissions an administrator consented to and the directory roles
//! its service principal holds.
//!
//! Permissions are copied into each token when it is issued (like the `roles` claim of a real
//! token), so changing them affects only tokens issued afterwards; directory roles are checked
//! when a request is served.

use std::collections::BTreeSet;

/// Application permissions (app roles of Microsoft Graph) by their Graph names.
pub mod permission {
    /// Read all users' full profiles.
    pub const USER_READ_ALL: &str = "User.Read.All";
    /// Read and write all users' full profiles (also allows password resets).
    pub const USER_READ_WRITE_ALL: &str = "User.ReadWrite.All";
    /// Read and write all password profiles: what a password reset needs, least privileged.
    pub const USER_PASSWORD_PROFILE_READ_WRITE_ALL: &str = "User-PasswordProfile.ReadWrite.All";
    /// Read the organization's information.
    pub const ORGANIZATION_READ_ALL: &str = "Organization.Read.All";
    /// Read directory data.
    pub const DIRECTORY_READ_ALL: &str = "Directory.Read.All";
    /// Read and write directory data.
    pub const DIRECTORY_READ_WRITE_ALL: &str = "Directory.ReadWrite.All";
}

/// A Microsoft Entra directory role the application's service principal can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DirectoryRole {
    /// May reset the passwords of non-administrators.
    UserAdministrator,
    /// May reset the passwords of anyone, administrators included.
    PrivilegedAuthenticationAdministrator,
}

/// The registered application and what it may do.
#[derive(Clone)]
pub struct AppRegistration {
    /// The application (client) id, a GUID.
    pub client_id: String,
    /// The client secret's value.
    pub client_secret: String,
    /// Its display name (Entra names the app in some errors).
    pub display_name: String,
    /// Granted application permissions, e.g. [`permission::USER_READ_ALL`].
    pub permissions: BTreeSet<String>,
    /// Directory roles of its service principal.
    pub directory_roles: BTreeSet<DirectoryRole>,
}

impl std::fmt::Debug for AppRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("display_name", &self.display_name)
            .field("permissions", &self.permissions)
            .field("directory_roles", &self.directory_roles)
            .finish()
    }
}

impl Default for AppRegistration {
    /// A fresh client id and a random secret; the three permissions Latchkey's connector asks
    /// for (`User.Read.All`, `User-PasswordProfile.ReadWrite.All`, `Organization.Read.All`);
    /// the User Administrator role.
    fn default() -> AppRegistration {
        AppRegistration {
            client_id: uuid::Uuid::new_v4().to_string(),
            client_secret: random_secret(),
            display_name: "Latchkey".to_string(),
            permissions: [
                permission::USER_READ_ALL,
                permission::USER_PASSWORD_PROFILE_READ_WRITE_ALL,
                permission::ORGANIZATION_READ_ALL,
            ]
            .into_iter()
            .map(str::to_string)
            .collect(),
            directory_roles: BTreeSet::from([DirectoryRole::UserAdministrator]),
        }
    }
}

/// A secret shaped like Entra's (40 characters, with `~` and `.`).
fn random_secret() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~._-";
    let mut rng = rand::thread_rng();
    let body: String = (0..37)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect();
    format!("{}8Q~{}", &body[..3], &body[3..])
}

/// What a token's permissions allow.
pub(crate) fn may_read_users(permissions: &BTreeSet<String>) -> bool {
    has_any(
        permissions,
        &[
            permission::USER_READ_ALL,
            permission::USER_READ_WRITE_ALL,
            permission::DIRECTORY_READ_ALL,
            permission::DIRECTORY_READ_WRITE_ALL,
        ],
    )
}

/// Whether a token may write a user's `passwordProfile`.
pub(crate) fn may_reset_passwords(permissions: &BTreeSet<String>) -> bool {
    has_any(
        permissions,
        &[
            permission::USER_PASSWORD_PROFILE_READ_WRITE_ALL,
            permission::USER_READ_WRITE_ALL,
            permission::DIRECTORY_READ_WRITE_ALL,
        ],
    )
}

/// Whether a token may write users' other properties.
pub(crate) fn may_write_users(permissions: &BTreeSet<String>) -> bool {
    has_any(
        permissions,
        &[
            permission::USER_READ_WRITE_ALL,
            permission::DIRECTORY_READ_WRITE_ALL,
        ],
    )
}

/// Whether a token may read the organization (lenient: any read permission will do).
pub(crate) fn may_read_organization(permissions: &BTreeSet<String>) -> bool {
    may_read_users(permissions) || permissions.contains(permission::ORGANIZATION_READ_ALL)
}

fn has_any(permissions: &BTreeSet<String>, wanted: &[&str]) -> bool {
    wanted.iter().any(|p| permissions.contains(*p))
}
