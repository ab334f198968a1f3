//! OpenAPI schemas of the types whose JSON form is written by hand: each is a string with a
//! pattern. Derived schemas of the other types refer to these by name: the type's
//! own name, `ToSchema`'s default.

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use crate::{Hash, TicketId, Timestamp};

/// SPEC §2; the same rule as [`crate::is_ticket_id`].
pub const TICKET_ID_PATTERN: &str = "^[A-Z][A-Z0-9]{0,15}-[0-9]{1,9}$";
/// RFC 3339 in UTC, as [`Timestamp`] writes it.
pub const TIMESTAMP_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$";
pub const HASH_PATTERN: &str = "^[0-9a-f]{64}$";

fn string(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

impl PartialSchema for TicketId {
    fn schema() -> RefOr<Schema> {
        string(TICKET_ID_PATTERN, "A ticket id such as `MC-4030`.").into()
    }
}

impl ToSchema for TicketId {}

impl PartialSchema for Timestamp {
    fn schema() -> RefOr<Schema> {
        string(
            TIMESTAMP_PATTERN,
            "RFC 3339, UTC, milliseconds (`2026-11-02T10:11:12.345Z`).",
        )
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
        .into()
    }
}

impl ToSchema for Timestamp {}

impl PartialSchema for Hash {
    fn schema() -> RefOr<Schema> {
        string(HASH_PATTERN, "blake3, 64 hex digits.").into()
    }
}

impl ToSchema for Hash {}
