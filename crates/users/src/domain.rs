//! The users domain: validated values and the account itself. Nothing here
//! knows about gRPC or SQL.

use std::fmt;

use chrono::{DateTime, Utc};

platform::uuid_id!(
    /// A user id: a UUIDv7, so ids sort in creation order.
    UserId
);

/// An email address, trimmed and lowercased, so uniqueness is
/// case-insensitive by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().to_lowercase();
        if email.is_empty() {
            return Err("is required");
        }
        if email.len() > 254 {
            return Err("must be at most 254 characters");
        }
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err("must be an email address like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok { Ok(Self(email)) } else { Err("must be an email address like name@example.com") }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        match name.chars().count() {
            0 => Err("is required"),
            n if n > Self::MAX_CHARS => Err("must be at most 100 characters"),
            _ if name.chars().any(char::is_control) => Err("must not contain control characters"),
            _ => Ok(Self(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as given: only ever hashed, never stored, logged or returned.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    /// Bounds the work one request can ask of the hasher.
    pub const MAX_BYTES: usize = 1024;

    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.chars().count() < Self::MIN_CHARS {
            Err("must be at least 8 characters")
        } else if raw.len() > Self::MAX_BYTES {
            Err("must be at most 1024 bytes")
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// An account as the service returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub name: UserName,
    pub roles: Roles,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An account as it is stored: the user and the hash of their password
/// (none for an account created without one, which cannot log in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub user: User,
    pub password_hash: Option<String>,
}

/// A role name: what the contract's access rules name (`admin`,
/// `fulfilment`); lowercase letters, digits, `-` and `_`, 1 to 32 of them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Role(String);

impl Role {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let role = raw.trim();
        if role.is_empty() {
            return Err("is required");
        }
        if role.len() > 32 || !role.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_".contains(c)) {
            return Err("must be 1 to 32 lowercase letters, digits, '-' or '_'");
        }
        Ok(Self(role.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The roles an account holds, sorted and without duplicates; stored as
/// one space-separated column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles(std::collections::BTreeSet<Role>);

impl Roles {
    /// From the stored column (roles separated by spaces).
    pub fn from_column(column: &str) -> Result<Self, &'static str> {
        column.split_whitespace().map(Role::parse).collect::<Result<_, _>>().map(Self)
    }

    pub fn to_column(&self) -> String {
        self.0.iter().map(Role::as_str).collect::<Vec<_>>().join(" ")
    }

    /// Adds `role`; false if it was there.
    pub fn grant(&mut self, role: Role) -> bool {
        self.0.insert(role)
    }

    /// Removes `role`; false if it was not there.
    pub fn revoke(&mut self, role: &Role) -> bool {
        self.0.remove(role)
    }

    pub fn names(&self) -> Vec<String> {
        self.0.iter().map(|role| role.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse("  User@Example.COM ").unwrap().as_str(), "user@example.com");
        assert_eq!(Email::parse("a.b+tag@sub.example.org").unwrap().as_str(), "a.b+tag@sub.example.org");
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "user",
            "user@",
            "@example.com",
            "user@example",
            "user@@example.com",
            "us er@example.com",
            ".user@example.com",
            "user..x@example.com",
            "user@-example.com",
            "user@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn names_are_one_to_a_hundred_characters() {
        assert_eq!(UserName::parse(" John Doe ").unwrap().as_str(), "John Doe");
        assert!(UserName::parse("  ").is_err());
        assert!(UserName::parse(&"é".repeat(100)).is_ok());
        assert!(UserName::parse(&"é".repeat(101)).is_err());
        assert!(UserName::parse("bad\u{7}name").is_err());
    }

    #[test]
    fn passwords_are_at_least_eight_characters_and_never_printed() {
        assert!(Password::parse("1234567").is_err());
        let password = Password::parse("correct horse").unwrap();
        assert!(!format!("{password:?}").contains("horse"));
        assert!(Password::parse(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn roles_are_kept_sorted_once_each_and_round_trip_through_the_column() {
        let mut roles = Roles::default();
        assert!(roles.grant(Role::parse("fulfilment").unwrap()));
        assert!(roles.grant(Role::parse("admin").unwrap()));
        assert!(!roles.grant(Role::parse("admin").unwrap()));
        assert_eq!(roles.to_column(), "admin fulfilment");
        assert_eq!(Roles::from_column("admin fulfilment").unwrap(), roles);
        assert!(roles.revoke(&Role::parse("admin").unwrap()));
        assert_eq!(roles.names(), ["fulfilment"]);
        for bad in ["", "Admin", "a b", "x".repeat(33).as_str()] {
            assert!(Role::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_must_be_uuids() {
        assert_eq!(UserId::parse(""), Err("is required"));
        assert_eq!(UserId::parse("42"), Err("must be a UUID"));
        let id = UserId::generate();
        assert_eq!(UserId::parse(&id.to_string()), Ok(id));
    }
}
