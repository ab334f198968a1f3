//! The server clock and fresh ids: the only place the shell reads the time or makes a ULID
//! (the pure core gets time as an argument).

use events::Timestamp;

/// The wall clock, in milliseconds since the epoch.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(ms).unwrap_or(0))
}

/// A fresh ULID string: event ids and (prefixed) runtime ids.
pub fn new_ulid() -> String {
    ulid::Ulid::new().to_string()
}

pub fn random_u32() -> u32 {
    let u = ulid::Ulid::new();
    // The low 32 bits of a ULID are random.
    u32::try_from(u.random() & 0xffff_ffff).unwrap_or(0)
}
