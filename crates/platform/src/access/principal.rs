//! Who a verified caller is, and what a service's domain is told of it.

use super::policy::ADMIN_ROLE;

/// A signed-in user, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIdentity {
    pub id: String,
    pub roles: Vec<String>,
}

impl UserIdentity {
    /// Whether the user holds `role`; an administrator holds every role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|held| held == role || held == ADMIN_ROLE)
    }
}

/// Who sent a request, as far as its credentials prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credential.
    Anonymous,
    User(UserIdentity),
    /// Another meshwork service, by name.
    Service(String),
}

/// What a service's domain is told about the caller of an admitted request:
/// a user, whose objects and roles decide what they may touch, or a trusted
/// caller (another service, or anyone under `MESHWORK_AUTH=optional`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Caller {
    Trusted,
    User(UserIdentity),
    /// Nobody proved anything: may touch no one's objects. Only public
    /// methods admit such a caller.
    #[default]
    Anonymous,
}

impl Caller {
    /// The signed-in user's id, if the caller is a user.
    pub fn user_id(&self) -> Option<&str> {
        match self {
            Self::User(user) => Some(&user.id),
            _ => None,
        }
    }

    /// Whether the caller may act on objects owned by `owner`: the owner
    /// themselves, a user holding one of `roles` (or admin), or a trusted caller.
    pub fn may_act_for(&self, owner: &str, roles: &[&str]) -> bool {
        match self {
            Self::Trusted => true,
            Self::User(user) => user.id == owner || roles.iter().any(|role| user.has_role(role)),
            Self::Anonymous => false,
        }
    }

    /// Whether the caller holds one of `roles` (an administrator holds
    /// every role; a trusted caller is not limited by roles).
    pub fn has_any_role(&self, roles: &[&str]) -> bool {
        match self {
            Self::Trusted => true,
            Self::User(user) => roles.iter().any(|role| user.has_role(role)),
            Self::Anonymous => false,
        }
    }

    /// The caller of an admitted gRPC request (set by [`super::AccessLayer`];
    /// a request that did not pass through it is anonymous).
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request.extensions().get::<Caller>().cloned().unwrap_or(Self::Anonymous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[&str]) -> Caller {
        Caller::User(UserIdentity { id: id.to_owned(), roles: roles.iter().map(|r| (*r).to_owned()).collect() })
    }

    #[test]
    fn owners_roles_and_trusted_callers_act_for_an_owner_and_nobody_else_does() {
        assert!(user("u1", &[]).may_act_for("u1", &[]));
        assert!(!user("u2", &[]).may_act_for("u1", &["fulfilment"]));
        assert!(user("u2", &["fulfilment"]).may_act_for("u1", &["fulfilment"]));
        assert!(user("u2", &["admin"]).may_act_for("u1", &["fulfilment"]));
        assert!(!user("u2", &["fulfilment"]).may_act_for("u1", &[]));
        assert!(Caller::Trusted.may_act_for("u1", &[]));
        assert!(!Caller::Anonymous.may_act_for("u1", &["admin"]));
    }
}
