//! The in-memory event-id index: a hash of each event id → its position. The sled log keeps
//! one per checkpoint window for the positions its disk index does not hold yet; PostgreSQL
//! keeps none (its unique index on the id answers).
//!
//! A hit is only a candidate: a store always reads the record and compares the id, so a hash
//! collision can never merge two ids. The first position of a hash sits in the map; later
//! positions with the same hash (a collision) go to a side list, so dedupe stays exact.
//!
//! sled persists a 128-bit hash per record in its checkpoints ([`id_hash_128`], part of that
//! format).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;

/// blake3 of the id, first 16 bytes little-endian. Part of sled's checkpoint format: never
/// change.
pub fn id_hash_128(id: &str) -> u128 {
    let hash = blake3::hash(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash.as_bytes()[..16]);
    u128::from_le_bytes(first)
}

/// Event-id hash → position, with a side list for the rare second position of a hash.
#[derive(Debug, Clone)]
pub struct IdIndex<K> {
    first: HashMap<K, u64>,
    /// Later positions whose hash equals an earlier one's.
    collisions: HashMap<K, Vec<u64>>,
}

impl<K> Default for IdIndex<K> {
    fn default() -> Self {
        IdIndex {
            first: HashMap::new(),
            collisions: HashMap::new(),
        }
    }
}

impl<K: Copy + Eq + Hash> IdIndex<K> {
    /// Makes room for `additional` more entries.
    pub fn reserve(&mut self, additional: usize) {
        self.first.reserve(additional);
    }

    /// Records that the event at `position` has an id with this hash.
    pub fn insert(&mut self, key: K, position: u64) {
        match self.first.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(position);
            }
            Entry::Occupied(_) => self.collisions.entry(key).or_default().push(position),
        }
    }

    /// Forgets that the event at `position` has an id with this hash (a store that moved the
    /// entry elsewhere, e.g. to disk).
    pub fn remove(&mut self, key: K, position: u64) {
        if let Entry::Occupied(mut side) = self.collisions.entry(key) {
            side.get_mut().retain(|&p| p != position);
            if side.get().is_empty() {
                side.remove();
            }
        }
        if self.first.get(&key) == Some(&position) {
            match self.collisions.get_mut(&key) {
                // The oldest later position takes the first place.
                Some(side) => {
                    let next = side.remove(0);
                    if side.is_empty() {
                        self.collisions.remove(&key);
                    }
                    self.first.insert(key, next);
                }
                None => {
                    self.first.remove(&key);
                }
            }
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.first.len() + self.collisions.values().map(Vec::len).sum::<usize>()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }

    /// Positions whose id has this hash, oldest first: usually none or one.
    pub fn candidates(&self, key: K) -> impl Iterator<Item = u64> + '_ {
        self.first
            .get(&key)
            .into_iter()
            .chain(self.collisions.get(&key).into_iter().flatten())
            .copied()
    }

    /// Entries at or below `head` (for `verify`, which checks it against the record count).
    pub fn entries_upto(&self, head: u64) -> u64 {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        count(self.first.values().filter(|&&p| p <= head).count())
            + count(
                self.collisions
                    .values()
                    .flatten()
                    .filter(|&&p| p <= head)
                    .count(),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hashes_are_blake3_prefixes() {
        let full = blake3::hash(b"evt-1");
        let bytes = full.as_bytes();
        assert_eq!(
            id_hash_128("evt-1"),
            u128::from_le_bytes(bytes[..16].try_into().unwrap())
        );
    }

    /// Given positions inserted under keys, when asked for a key, then its candidates.
    #[test]
    fn candidates_table() {
        struct Row {
            name: &'static str,
            given: &'static [(u64, u64)],
            key: u64,
            then: &'static [u64],
            entries_upto: (u64, u64),
        }
        let rows = [
            Row {
                name: "empty",
                given: &[],
                key: 7,
                then: &[],
                entries_upto: (10, 0),
            },
            Row {
                name: "one hit",
                given: &[(7, 1), (8, 2)],
                key: 7,
                then: &[1],
                entries_upto: (1, 1),
            },
            Row {
                name: "a miss",
                given: &[(7, 1), (8, 2)],
                key: 9,
                then: &[],
                entries_upto: (2, 2),
            },
            Row {
                name: "a collision keeps every position, oldest first",
                given: &[(7, 1), (8, 2), (7, 3), (7, 4)],
                key: 7,
                then: &[1, 3, 4],
                entries_upto: (3, 3),
            },
        ];
        for row in rows {
            let mut index = IdIndex::default();
            for &(key, position) in row.given {
                index.insert(key, position);
            }
            let got: Vec<u64> = index.candidates(row.key).collect();
            assert_eq!(got, row.then, "{}", row.name);
            let (head, entries) = row.entries_upto;
            assert_eq!(index.entries_upto(head), entries, "{}", row.name);
        }
    }

    /// Given positions inserted under keys, when some are removed, then what is left.
    #[test]
    fn remove_table() {
        type Rows = [(
            &'static str,
            &'static [(u64, u64)],
            &'static [(u64, u64)],
            &'static [(u64, &'static [u64])],
        ); 4];
        let rows: Rows = [
            ("the only entry", &[(7, 1)], &[(7, 1)], &[(7, &[])]),
            (
                "an absent one changes nothing",
                &[(7, 1)],
                &[(7, 2), (8, 1)],
                &[(7, &[1])],
            ),
            (
                "the first of a collision: the next takes its place",
                &[(7, 1), (7, 3), (7, 4)],
                &[(7, 1)],
                &[(7, &[3, 4])],
            ),
            (
                "the oldest positions first, as a store moves them out",
                &[(7, 1), (8, 2), (7, 3)],
                &[(7, 1), (8, 2), (7, 3)],
                &[(7, &[]), (8, &[])],
            ),
        ];
        for (name, given, removed, then) in rows {
            let mut index = IdIndex::default();
            for &(key, position) in given {
                index.insert(key, position);
            }
            for &(key, position) in removed {
                index.remove(key, position);
            }
            for &(key, left) in then {
                let got: Vec<u64> = index.candidates(key).collect();
                assert_eq!(got, left, "{name}");
            }
            let expected: usize = then.iter().map(|(_, l)| l.len()).sum();
            assert_eq!(index.len(), expected, "{name}");
        }
    }
}
