//! A user of the emulated directory: what tests seed ([`NewUser`]), what they inspect
//! ([`UserState`]), the catalogue of properties Graph knows a user by (which are returned by
//! default, which can be filtered and searched, and how), and a user's JSON as Graph returns it.
//!
//! This module never decides who may see or change a user; `users` does.

use std::fmt;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::clock;

/// The type of a property's values, as `$filter` literals must match it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    String,
    Boolean,
    DateTime,
    StringCollection,
    Complex,
}

impl Kind {
    /// The EDM type name Graph's messages use.
    pub fn edm(self) -> &'static str {
        match self {
            Kind::String => "Edm.String",
            Kind::Boolean => "Edm.Boolean",
            Kind::DateTime => "Edm.DateTimeOffset",
            Kind::StringCollection => "Collection(Edm.String)",
            Kind::Complex => "microsoft.graph.passwordProfile",
        }
    }
}

/// How `$filter` may use a property.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Filtering {
    /// Not at all.
    None,
    /// `eq` and `in` by default; `ne` and `not` only in advanced queries.
    Equality,
    /// `eq`, `in` and `startsWith` by default; `ne`, `not`, `endsWith` and `eq null` only in
    /// advanced queries.
    Text,
    /// Only in advanced queries (`ConsistencyLevel: eventual` and `$count=true`).
    AdvancedOnly,
}

/// A property of `microsoft.graph.user`.
#[derive(Debug)]
pub(crate) struct Property {
    pub name: &'static str,
    pub kind: Kind,
    /// Returned without `$select` (v1.0's default set).
    pub default: bool,
    pub filtering: Filtering,
    /// Usable in `$search="name:text"`.
    pub searchable: bool,
}

const fn property(
    name: &'static str,
    kind: Kind,
    default: bool,
    filtering: Filtering,
    searchable: bool,
) -> Property {
    Property {
        name,
        kind,
        default,
        filtering,
        searchable,
    }
}

/// The properties the emulator models, in the order Graph returns them.
pub(crate) const PROPERTIES: &[Property] = &[
    property(
        "businessPhones",
        Kind::StringCollection,
        true,
        Filtering::None,
        false,
    ),
    property("displayName", Kind::String, true, Filtering::Text, true),
    property("givenName", Kind::String, true, Filtering::Text, true),
    property("jobTitle", Kind::String, true, Filtering::Text, false),
    property("mail", Kind::String, true, Filtering::Text, true),
    property("mobilePhone", Kind::String, true, Filtering::None, false),
    property("officeLocation", Kind::String, true, Filtering::None, false),
    property(
        "preferredLanguage",
        Kind::String,
        true,
        Filtering::None,
        false,
    ),
    property("surname", Kind::String, true, Filtering::Text, true),
    property(
        "userPrincipalName",
        Kind::String,
        true,
        Filtering::Text,
        true,
    ),
    property("id", Kind::String, true, Filtering::Equality, false),
    property(
        "accountEnabled",
        Kind::Boolean,
        false,
        Filtering::Equality,
        false,
    ),
    property(
        "createdDateTime",
        Kind::DateTime,
        false,
        Filtering::None,
        false,
    ),
    property("userType", Kind::String, false, Filtering::Equality, false),
    property("mailNickname", Kind::String, false, Filtering::Text, false),
    property(
        "lastPasswordChangeDateTime",
        Kind::DateTime,
        false,
        Filtering::None,
        false,
    ),
    property(
        "passwordPolicies",
        Kind::String,
        false,
        Filtering::AdvancedOnly,
        false,
    ),
    property(
        "passwordProfile",
        Kind::Complex,
        false,
        Filtering::None,
        false,
    ),
    property(
        "onPremisesSyncEnabled",
        Kind::Boolean,
        false,
        Filtering::AdvancedOnly,
        false,
    ),
    property(
        "onPremisesSamAccountName",
        Kind::String,
        false,
        Filtering::AdvancedOnly,
        false,
    ),
    property(
        "onPremisesDistinguishedName",
        Kind::String,
        false,
        Filtering::None,
        false,
    ),
    property(
        "onPremisesDomainName",
        Kind::String,
        false,
        Filtering::None,
        false,
    ),
    property(
        "onPremisesImmutableId",
        Kind::String,
        false,
        Filtering::Equality,
        false,
    ),
    property(
        "onPremisesLastSyncDateTime",
        Kind::DateTime,
        false,
        Filtering::None,
        false,
    ),
    property(
        "onPremisesUserPrincipalName",
        Kind::String,
        false,
        Filtering::None,
        false,
    ),
];

/// The property called `name`, matched case-insensitively as Graph does.
pub(crate) fn lookup(name: &str) -> Option<&'static Property> {
    PROPERTIES
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
}

/// Properties a PATCH may never set.
pub(crate) const READ_ONLY: &[&str] = &[
    "id",
    "createdDateTime",
    "lastPasswordChangeDateTime",
    "onPremisesSyncEnabled",
    "onPremisesSamAccountName",
    "onPremisesDistinguishedName",
    "onPremisesDomainName",
    "onPremisesLastSyncDateTime",
    "onPremisesUserPrincipalName",
];

/// A user for a test to add. Without `on_premises_sam_account_name` it is cloud-only; with
/// it, it is synced from on-premises AD (`onPremisesSyncEnabled: true`) and linked to the
/// on-premises account of that sAMAccountName.
///
/// Deserializes from Graph-style camelCase JSON (the binary's `--users` file).
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct NewUser {
    /// The object id; a random GUID when `None`.
    pub id: Option<String>,
    pub user_principal_name: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    /// Defaults to true.
    pub account_enabled: bool,
    /// e.g. `DisableStrongPassword`, `DisablePasswordExpiration`, or both comma-separated.
    pub password_policies: Option<String>,
    /// Makes the user synced, linked to this on-premises account.
    pub on_premises_sam_account_name: Option<String>,
    /// The on-premises DN; filled from AD by the password hash sync when `None`.
    pub on_premises_distinguished_name: Option<String>,
    /// The user's password as seeded (kept in memory for tests only).
    pub password: Option<String>,
    /// `lastPasswordChangeDateTime`; now when `None`.
    #[serde(skip)]
    pub last_password_change: Option<SystemTime>,
    /// Holds an administrator role: only an application with Privileged Authentication
    /// Administrator may reset its password.
    pub privileged: bool,
}

impl Default for NewUser {
    fn default() -> NewUser {
        NewUser {
            id: None,
            user_principal_name: String::new(),
            display_name: String::new(),
            given_name: None,
            surname: None,
            mail: None,
            account_enabled: true,
            password_policies: None,
            on_premises_sam_account_name: None,
            on_premises_distinguished_name: None,
            password: None,
            last_password_change: None,
            privileged: false,
        }
    }
}

impl NewUser {
    /// A cloud-only user; `mail` is its UPN.
    pub fn cloud(user_principal_name: &str, display_name: &str) -> NewUser {
        NewUser {
            user_principal_name: user_principal_name.to_string(),
            display_name: display_name.to_string(),
            mail: Some(user_principal_name.to_string()),
            ..NewUser::default()
        }
    }

    /// A user synced from on-premises AD, linked to the account `sam_account_name`.
    pub fn synced(
        user_principal_name: &str,
        display_name: &str,
        sam_account_name: &str,
    ) -> NewUser {
        NewUser {
            on_premises_sam_account_name: Some(sam_account_name.to_string()),
            ..NewUser::cloud(user_principal_name, display_name)
        }
    }
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("user_principal_name", &self.user_principal_name)
            .field("display_name", &self.display_name)
            .field(
                "on_premises_sam_account_name",
                &self.on_premises_sam_account_name,
            )
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .finish_non_exhaustive()
    }
}

/// The last `passwordProfile` a PATCH set, as the client sent it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordProfileRecord {
    /// The password sent (`None` when the PATCH only changed the flags).
    pub password: Option<String>,
    /// `forceChangePasswordNextSignIn` as sent (`None` when absent).
    pub force_change_password_next_sign_in: Option<bool>,
    /// `forceChangePasswordNextSignInWithMfa` as sent (`None` when absent).
    pub force_change_password_next_sign_in_with_mfa: Option<bool>,
    /// When the PATCH was served.
    pub at: SystemTime,
}

impl fmt::Debug for PasswordProfileRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordProfileRecord")
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field(
                "force_change_password_next_sign_in",
                &self.force_change_password_next_sign_in,
            )
            .field(
                "force_change_password_next_sign_in_with_mfa",
                &self.force_change_password_next_sign_in_with_mfa,
            )
            .field("at", &self.at)
            .finish()
    }
}

/// A user as a test sees it (a snapshot).
#[derive(Clone)]
pub struct UserState {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub account_enabled: bool,
    /// True for a synced user.
    pub on_premises_sync_enabled: bool,
    pub on_premises_sam_account_name: Option<String>,
    pub on_premises_distinguished_name: Option<String>,
    pub password_policies: Option<String>,
    /// `lastPasswordChangeDateTime`, at full precision (Graph shows whole seconds).
    pub last_password_change: SystemTime,
    /// The last `passwordProfile` written through Graph.
    pub last_password_profile: Option<PasswordProfileRecord>,
    /// The password last set through Graph (or seeded); never for a synced user's on-premises
    /// changes, which the emulator cannot know.
    pub password: Option<String>,
    /// How many PATCHes set a password.
    pub password_resets: u32,
    /// How many on-premises password changes the password hash sync carried over.
    pub synced_password_changes: u32,
}

impl fmt::Debug for UserState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserState")
            .field("id", &self.id)
            .field("user_principal_name", &self.user_principal_name)
            .field("on_premises_sync_enabled", &self.on_premises_sync_enabled)
            .field(
                "on_premises_sam_account_name",
                &self.on_premises_sam_account_name,
            )
            .field("password_policies", &self.password_policies)
            .field(
                "last_password_change",
                &clock::graph_datetime(self.last_password_change),
            )
            .field("last_password_profile", &self.last_password_profile)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("password_resets", &self.password_resets)
            .field("synced_password_changes", &self.synced_password_changes)
            .finish_non_exhaustive()
    }
}

/// What links a synced user to its on-premises account.
#[derive(Clone, Debug)]
pub(crate) struct OnPremisesLink {
    pub sam_account_name: String,
    pub distinguished_name: Option<String>,
    pub domain_name: Option<String>,
    pub immutable_id: String,
    pub last_sync: SystemTime,
}

/// A user in the directory.
#[derive(Clone)]
pub(crate) struct User {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub mail: Option<String>,
    pub account_enabled: bool,
    pub password_policies: Option<String>,
    pub created: SystemTime,
    pub last_password_change: SystemTime,
    pub on_premises: Option<OnPremisesLink>,
    pub privileged: bool,
    pub password: Option<String>,
    pub last_password_profile: Option<PasswordProfileRecord>,
    pub password_resets: u32,
    pub synced_password_changes: u32,
}

impl User {
    /// A user from a test's description; `now` is its creation.
    pub fn new(spec: NewUser, now: SystemTime) -> User {
        let on_premises = spec.on_premises_sam_account_name.map(|sam| OnPremisesLink {
            domain_name: spec
                .user_principal_name
                .split_once('@')
                .map(|(_, domain)| domain.to_string()),
            sam_account_name: sam,
            distinguished_name: spec.on_premises_distinguished_name,
            immutable_id: random_immutable_id(),
            last_sync: now,
        });
        User {
            id: spec
                .id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
                .to_lowercase(),
            user_principal_name: spec.user_principal_name,
            display_name: spec.display_name,
            given_name: spec.given_name,
            surname: spec.surname,
            mail: spec.mail,
            account_enabled: spec.account_enabled,
            password_policies: spec.password_policies,
            created: now,
            last_password_change: spec.last_password_change.unwrap_or(now),
            on_premises,
            privileged: spec.privileged,
            password: spec.password,
            last_password_profile: None,
            password_resets: 0,
            synced_password_changes: 0,
        }
    }

    pub fn is_synced(&self) -> bool {
        self.on_premises.is_some()
    }

    /// Whether `key` (an object id or a userPrincipalName) names this user.
    pub fn is_named(&self, key: &str) -> bool {
        self.id.eq_ignore_ascii_case(key) || self.user_principal_name.eq_ignore_ascii_case(key)
    }

    /// Whether `DisableStrongPassword` is among its password policies.
    pub fn strong_password_disabled(&self) -> bool {
        self.password_policies.as_deref().is_some_and(|policies| {
            policies
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("DisableStrongPassword"))
        })
    }

    pub fn state(&self) -> UserState {
        UserState {
            id: self.id.clone(),
            user_principal_name: self.user_principal_name.clone(),
            display_name: self.display_name.clone(),
            mail: self.mail.clone(),
            account_enabled: self.account_enabled,
            on_premises_sync_enabled: self.is_synced(),
            on_premises_sam_account_name: self
                .on_premises
                .as_ref()
                .map(|link| link.sam_account_name.clone()),
            on_premises_distinguished_name: self
                .on_premises
                .as_ref()
                .and_then(|link| link.distinguished_name.clone()),
            password_policies: self.password_policies.clone(),
            last_password_change: self.last_password_change,
            last_password_profile: self.last_password_profile.clone(),
            password: self.password.clone(),
            password_resets: self.password_resets,
            synced_password_changes: self.synced_password_changes,
        }
    }

    /// Every modelled property, as Graph would return it with all of them selected.
    pub fn to_json(&self) -> Map<String, Value> {
        let link = self.on_premises.as_ref();
        let profile = self.last_password_profile.as_ref();
        let mut map = Map::new();
        for p in PROPERTIES {
            let value = match p.name {
                "businessPhones" => json!([]),
                "displayName" => json!(self.display_name),
                "givenName" => json!(self.given_name),
                "jobTitle" | "mobilePhone" | "officeLocation" | "preferredLanguage" => Value::Null,
                "mail" => json!(self.mail),
                "surname" => json!(self.surname),
                "userPrincipalName" => json!(self.user_principal_name),
                "id" => json!(self.id),
                "accountEnabled" => json!(self.account_enabled),
                "createdDateTime" => json!(clock::graph_datetime(self.created)),
                "userType" => json!("Member"),
                "mailNickname" => json!(
                    self.user_principal_name
                        .split_once('@')
                        .map_or(self.user_principal_name.as_str(), |(local, _)| local)
                ),
                "lastPasswordChangeDateTime" => {
                    json!(clock::graph_datetime(self.last_password_change))
                }
                "passwordPolicies" => json!(self.password_policies),
                "passwordProfile" => json!({
                    "password": null,
                    "forceChangePasswordNextSignIn": profile
                        .and_then(|p| p.force_change_password_next_sign_in)
                        .unwrap_or(false),
                    "forceChangePasswordNextSignInWithMfa": profile
                        .and_then(|p| p.force_change_password_next_sign_in_with_mfa)
                        .unwrap_or(false),
                }),
                "onPremisesSyncEnabled" => json!(link.map(|_| true)),
                "onPremisesSamAccountName" => json!(link.map(|l| &l.sam_account_name)),
                "onPremisesDistinguishedName" => {
                    json!(link.and_then(|l| l.distinguished_name.as_ref()))
                }
                "onPremisesDomainName" => json!(link.and_then(|l| l.domain_name.as_ref())),
                "onPremisesImmutableId" => json!(link.map(|l| &l.immutable_id)),
                "onPremisesLastSyncDateTime" => {
                    json!(link.map(|l| clock::graph_datetime(l.last_sync)))
                }
                "onPremisesUserPrincipalName" => json!(link.map(|_| &self.user_principal_name)),
                _ => Value::Null,
            };
            map.insert(p.name.to_string(), value);
        }
        map
    }
}

/// An `onPremisesImmutableId`: the base64 of 16 bytes (an objectGUID, as Entra Connect uses).
fn random_immutable_id() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// The user's JSON restricted to `selected` (or to the default set when `None`).
pub(crate) fn project(user: &User, selected: Option<&[&'static Property]>) -> Map<String, Value> {
    let mut all = user.to_json();
    let mut out = Map::new();
    match selected {
        Some(selected) => {
            for p in selected {
                if let Some(value) = all.remove(p.name) {
                    out.insert(p.name.to_string(), value);
                }
            }
        }
        None => {
            for p in PROPERTIES.iter().filter(|p| p.default) {
                if let Some(value) = all.remove(p.name) {
                    out.insert(p.name.to_string(), value);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_has_a_value_and_the_default_set_is_v1s() {
        let user = User::new(NewUser::synced("a@corp.test", "A", "a"), SystemTime::now());
        let json = user.to_json();
        assert_eq!(json.len(), PROPERTIES.len());
        let defaults: Vec<_> = project(&user, None).keys().cloned().collect();
        assert_eq!(defaults.len(), 11);
        assert!(defaults.contains(&"id".to_string()));
        assert!(!defaults.contains(&"accountEnabled".to_string()));
        assert_eq!(json["onPremisesSyncEnabled"], json!(true));
        assert_eq!(lookup("DISPLAYNAME").map(|p| p.name), Some("displayName"));
    }

    #[test]
    fn cloud_users_have_null_on_premises_properties() {
        let user = User::new(NewUser::cloud("b@corp.test", "B"), SystemTime::now());
        let json = user.to_json();
        assert_eq!(json["onPremisesSyncEnabled"], Value::Null);
        assert_eq!(json["onPremisesSamAccountName"], Value::Null);
    }
}
