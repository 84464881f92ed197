//! The users service's use cases, over the store port: validation,
//! hashing, token issuance. Transport-free: the gRPC adapter calls these.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, SubsecRound, Utc};
use platform::access::{ADMIN_ROLE, Caller};
use platform::pagination::PageRequest;
use platform::validation::Violations;

use crate::config::AdminRef;
use crate::domain::{Email, Password, Role, Roles, User, UserId, UserName, UserRecord};
use crate::error::UserError;
use crate::password::Hashing;
use crate::store::UserStore;
use crate::throttle::LoginThrottle;
use crate::tokens::{IssuedToken, PublicJwk, TokenIssuer};

/// The fields of a new account, as received.
#[derive(Debug, Default)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password: Option<String>,
}

/// The fields to change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub email: Option<String>,
    pub name: Option<String>,
    pub password: Option<String>,
}

#[derive(Clone)]
pub struct Users {
    store: Arc<dyn UserStore>,
    tokens: Arc<TokenIssuer>,
    /// Administrators named by configuration (USERS_ADMINS).
    admins: Arc<Vec<AdminRef>>,
    /// The roles an account may be granted: those the contract names.
    known_roles: Arc<BTreeSet<String>>,
    hashing: Hashing,
    throttle: Arc<LoginThrottle>,
}

impl Users {
    pub fn new(store: Arc<dyn UserStore>, tokens: Arc<TokenIssuer>) -> Self {
        Self {
            store,
            tokens,
            admins: Arc::default(),
            known_roles: Arc::new(platform::access::AccessPolicy::contract().roles()),
            hashing: Hashing::default(),
            throttle: Arc::default(),
        }
    }

    pub fn with_admins(mut self, admins: impl IntoIterator<Item = AdminRef>) -> Self {
        self.admins = Arc::new(admins.into_iter().collect());
        self
    }

    pub fn with_hashing(mut self, hashing: Hashing) -> Self {
        self.hashing = hashing;
        self
    }

    /// The keys that verify this service's tokens, for its own access checks.
    pub fn token_issuer(&self) -> &Arc<TokenIssuer> {
        &self.tokens
    }

    pub fn store(&self) -> &Arc<dyn UserStore> {
        &self.store
    }

    pub async fn create(&self, input: NewUser) -> Result<User, UserError> {
        let mut violations = Violations::new();
        let email = violations.check("email", Email::parse(&input.email));
        let name = violations.check("name", UserName::parse(&input.name));
        let password = violations.check_optional("password", input.password.as_deref().map(Password::parse));
        violations.into_result()?;
        let (Some(email), Some(name), Some(password)) = (email, name, password) else {
            unreachable!("every check passed");
        };

        let password_hash = match password {
            Some(password) => Some(self.hashing.hash(password).await?),
            None => None,
        };
        let now = now();
        let user =
            User { id: UserId::generate(), email, name, roles: Roles::default(), created_at: now, updated_at: now };
        // The unique index decides between concurrent creates with one email.
        self.store.insert(&UserRecord { user: user.clone(), password_hash }).await?;
        tracing::info!(user_id = %user.id, "user created");
        Ok(user)
    }

    /// A user reads, changes and deletes only their own account;
    /// administrators and trusted callers (other services) any.
    pub async fn get(&self, id: &str, caller: &Caller) -> Result<User, UserError> {
        let id = parse_id(id)?;
        check_owner(id, caller)?;
        let record = self.store.get(id).await?.ok_or(UserError::NotFound(id))?;
        Ok(record.user)
    }

    /// One page of users in id order, and the token of the next page (empty
    /// on the last). Every account's email is in it: for administrators and
    /// trusted callers only.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        caller: &Caller,
    ) -> Result<(Vec<User>, String), UserError> {
        if !caller.has_any_role(&[ADMIN_ROLE]) {
            return Err(UserError::AdminsOnly);
        }
        let page = PageRequest::parse(page_size, page_token)?;
        let after =
            match &page.after {
                None => None,
                Some(cursor) => Some(UserId::parse(cursor).map_err(|_| {
                    platform::validation::violation("page_token", "is not a token from a previous page")
                })?),
            };
        let records = self.store.list(after, page.fetch_limit()).await?;
        let users = records.into_iter().map(|record| record.user).collect();
        Ok(page.finish(users, |user: &User| user.id.to_string()))
    }

    pub async fn update(&self, id: &str, changes: UserChanges, caller: &Caller) -> Result<User, UserError> {
        let mut violations = Violations::new();
        let id = violations.check("id", UserId::parse(id));
        let email = violations.check_optional("email", changes.email.as_deref().map(Email::parse));
        let name = violations.check_optional("name", changes.name.as_deref().map(UserName::parse));
        let password = violations.check_optional("password", changes.password.as_deref().map(Password::parse));
        violations.into_result()?;
        let (Some(id), Some(email), Some(name), Some(password)) = (id, email, name, password) else {
            unreachable!("every check passed");
        };
        check_owner(id, caller)?;

        let mut record = self.store.get(id).await?.ok_or(UserError::NotFound(id))?;
        if let Some(email) = email {
            record.user.email = email;
        }
        if let Some(name) = name {
            record.user.name = name;
        }
        if let Some(password) = password {
            record.password_hash = Some(self.hashing.hash(password).await?);
        }
        record.user.updated_at = now();
        if !self.store.update(&record).await? {
            return Err(UserError::NotFound(id));
        }
        Ok(record.user)
    }

    pub async fn delete(&self, id: &str, caller: &Caller) -> Result<(), UserError> {
        let id = parse_id(id)?;
        check_owner(id, caller)?;
        if self.store.delete(id).await? {
            tracing::info!(user_id = %id, "user deleted");
            Ok(())
        } else {
            Err(UserError::NotFound(id))
        }
    }

    /// An access token for the account with this email and password,
    /// carrying the account's roles. Every failure is the same
    /// [`UserError::BadCredentials`], in about the same time; repeated
    /// failures for one email are spaced out ([`LoginThrottle`]).
    pub async fn login(&self, email: &str, password: &str) -> Result<(IssuedToken, User), UserError> {
        let account = email.trim().to_lowercase();
        self.throttle.check(&account, Instant::now()).map_err(UserError::Throttled)?;
        let record = match Email::parse(email) {
            Ok(email) => self.store.get_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = record.as_ref().and_then(|record| record.password_hash.clone());
        if !self.hashing.verify(password.to_owned(), hash).await? {
            self.throttle.failed(&account, Instant::now());
            return Err(UserError::BadCredentials);
        }
        self.throttle.succeeded(&account);
        let user = record.expect("a verified password belongs to a record").user;
        let token = self.tokens.issue(user.id, self.token_roles(&user))?;
        Ok((token, user))
    }

    /// Gives the account `id` the role `role` (one the contract names).
    pub async fn grant_role(&self, id: &str, role: &str) -> Result<User, UserError> {
        self.change_roles(id, role, |roles, role| {
            roles.grant(role);
        })
        .await
    }

    /// Takes the role `role` from the account `id`.
    pub async fn revoke_role(&self, id: &str, role: &str) -> Result<User, UserError> {
        self.change_roles(id, role, |roles, role| {
            roles.revoke(&role);
        })
        .await
    }

    async fn change_roles(&self, id: &str, role: &str, change: impl Fn(&mut Roles, Role)) -> Result<User, UserError> {
        let mut violations = Violations::new();
        let id = violations.check("id", UserId::parse(id));
        let role = violations.check("role", Role::parse(role));
        if let Some(role) = &role
            && !self.known_roles.contains(role.as_str())
        {
            let known = self.known_roles.iter().cloned().collect::<Vec<_>>().join(", ");
            violations.add("role", format!("is not a role the contract names ({known})"));
        }
        violations.into_result()?;
        let (Some(id), Some(role)) = (id, role) else { unreachable!("every check passed") };
        // Compare-and-set: a concurrent change makes this one read again.
        loop {
            let mut record = self.store.get(id).await?.ok_or(UserError::NotFound(id))?;
            let before = record.user.roles.clone();
            change(&mut record.user.roles, role.clone());
            if record.user.roles == before || self.store.update_roles(id, &before, &record.user.roles).await? {
                tracing::info!(user_id = %id, roles = %record.user.roles.to_column(), "roles changed");
                return Ok(record.user);
            }
        }
    }

    /// The roles a new token carries: the account's, plus admin when
    /// USERS_ADMINS names it by id or email.
    fn token_roles(&self, user: &User) -> Vec<String> {
        let mut roles = user.roles.clone();
        let named = self.admins.iter().any(|admin| match admin {
            AdminRef::Id(id) => *id == user.id,
            AdminRef::Email(email) => *email == user.email,
        });
        if named {
            roles.grant(Role::parse(ADMIN_ROLE).expect("admin is a valid role"));
        }
        roles.names()
    }

    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.tokens.jwks()
    }
}

/// The current time at the precision both databases keep (microseconds), so
/// what a call returns is exactly what a later read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn check_owner(id: UserId, caller: &Caller) -> Result<(), UserError> {
    if caller.may_act_for(&id.to_string(), &[ADMIN_ROLE]) { Ok(()) } else { Err(UserError::NotYours) }
}

fn parse_id(id: &str) -> Result<UserId, UserError> {
    UserId::parse(id).map_err(|why| platform::validation::violation("id", why).into())
}
