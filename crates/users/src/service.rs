//! The users service's use cases, over the store port: validation,
//! hashing, token issuance. Transport-free: the gRPC adapter calls these.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, Utc};
use platform::pagination::PageRequest;
use platform::validation::Violations;

use crate::domain::{Email, Password, User, UserId, UserName, UserRecord};
use crate::error::UserError;
use crate::store::UserStore;
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
    /// Signed-in users who may list and read every account (USERS_ADMINS).
    admins: Arc<HashSet<UserId>>,
}

impl Users {
    pub fn new(store: Arc<dyn UserStore>, tokens: Arc<TokenIssuer>) -> Self {
        Self { store, tokens, admins: Arc::default() }
    }

    pub fn with_admins(mut self, admins: impl IntoIterator<Item = UserId>) -> Self {
        self.admins = Arc::new(admins.into_iter().collect());
        self
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
            Some(password) => Some(crate::password::hash(password).await?),
            None => None,
        };
        let now = now();
        let user = User { id: UserId::generate(), email, name, created_at: now, updated_at: now };
        // The unique index decides between concurrent creates with one email.
        self.store.insert(&UserRecord { user: user.clone(), password_hash }).await?;
        tracing::info!(user_id = %user.id, "user created");
        Ok(user)
    }

    /// `caller` is the verified user making the request, when there is one
    /// (none: a trusted internal call): a user reads, changes and deletes only
    /// their own account; administrators read any.
    pub async fn get(&self, id: &str, caller: Option<&str>) -> Result<User, UserError> {
        let id = parse_id(id)?;
        if !self.is_admin(caller) {
            check_owner(id, caller)?;
        }
        let record = self.store.get(id).await?.ok_or(UserError::NotFound(id))?;
        Ok(record.user)
    }

    /// One page of users in id order, and the token of the next page (empty
    /// on the last). Every account's email is in it: for administrators and
    /// trusted internal calls only.
    pub async fn list(
        &self,
        page_size: i32,
        page_token: &str,
        caller: Option<&str>,
    ) -> Result<(Vec<User>, String), UserError> {
        if caller.is_some() && !self.is_admin(caller) {
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

    pub async fn update(&self, id: &str, changes: UserChanges, caller: Option<&str>) -> Result<User, UserError> {
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
            record.password_hash = Some(crate::password::hash(password).await?);
        }
        record.user.updated_at = now();
        if !self.store.update(&record).await? {
            return Err(UserError::NotFound(id));
        }
        Ok(record.user)
    }

    pub async fn delete(&self, id: &str, caller: Option<&str>) -> Result<(), UserError> {
        let id = parse_id(id)?;
        check_owner(id, caller)?;
        if self.store.delete(id).await? {
            tracing::info!(user_id = %id, "user deleted");
            Ok(())
        } else {
            Err(UserError::NotFound(id))
        }
    }

    /// An access token for the account with this email and password. Every
    /// failure is the same [`UserError::BadCredentials`], in about the same time.
    pub async fn login(&self, email: &str, password: &str) -> Result<(IssuedToken, User), UserError> {
        let record = match Email::parse(email) {
            Ok(email) => self.store.get_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = record.as_ref().and_then(|record| record.password_hash.clone());
        if !crate::password::verify(password.to_owned(), hash).await {
            return Err(UserError::BadCredentials);
        }
        let user = record.expect("a verified password belongs to a record").user;
        let token = self.tokens.issue(user.id)?;
        Ok((token, user))
    }

    pub fn jwks(&self) -> Vec<PublicJwk> {
        self.tokens.jwks()
    }

    fn is_admin(&self, caller: Option<&str>) -> bool {
        caller.and_then(|caller| UserId::parse(caller).ok()).is_some_and(|caller| self.admins.contains(&caller))
    }
}

/// The current time at the precision both databases keep (microseconds), so
/// what a call returns is exactly what a later read returns.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn check_owner(id: UserId, caller: Option<&str>) -> Result<(), UserError> {
    match caller {
        Some(caller) if caller != id.to_string() => Err(UserError::NotYours),
        _ => Ok(()),
    }
}

fn parse_id(id: &str) -> Result<UserId, UserError> {
    UserId::parse(id).map_err(|why| platform::validation::violation("id", why).into())
}
