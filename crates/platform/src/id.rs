//! Entity ids that are UUIDv7s, so they sort by creation time: one parser
//! (with the messages every service reports) and a macro for the newtype
//! each service gives its own ids, so a user id is never taken for an order id.

pub use uuid::Uuid;

/// Parses a required UUID, with the field-violation wording the services use.
pub fn parse_uuid(raw: &str) -> Result<Uuid, &'static str> {
    if raw.is_empty() {
        return Err("is required");
    }
    Uuid::try_parse(raw).map_err(|_| "must be a UUID")
}

/// `uuid_id!(/// docs\n OrderId)` declares `pub struct OrderId(Uuid)` with
/// `generate` (a new UUIDv7), `parse`, `from_uuid`, `as_uuid` and `Display`.
#[macro_export]
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name($crate::id::Uuid);

        impl $name {
            pub fn generate() -> Self {
                Self($crate::id::Uuid::now_v7())
            }

            pub fn parse(raw: &str) -> Result<Self, &'static str> {
                $crate::id::parse_uuid(raw).map(Self)
            }

            pub fn from_uuid(uuid: $crate::id::Uuid) -> Self {
                Self(uuid)
            }

            pub fn as_uuid(&self) -> $crate::id::Uuid {
                self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    crate::uuid_id!(
        /// A test id.
        ThingId
    );

    #[test]
    fn ids_parse_what_they_print_and_name_what_is_wrong() {
        assert_eq!(ThingId::parse(""), Err("is required"));
        assert_eq!(ThingId::parse("42"), Err("must be a UUID"));
        let id = ThingId::generate();
        assert_eq!(ThingId::parse(&id.to_string()), Ok(id));
        assert_eq!(ThingId::from_uuid(id.as_uuid()), id);
        assert!(ThingId::generate() > id, "UUIDv7s sort by creation");
    }
}
