//! Commands on one stream take turns within a process.
//!
//! decide → append is atomic per stream by its expected version: a command that loses the race
//! decides again. That is safe, but many writers on one ticket (agents' hooks, operators and
//! the orchestrator commenting on a busy ticket) lose over and over: only one append per
//! stream wins each group commit, so with sixteen writers a quarter of the commands used up
//! every retry and were answered a 409 they did nothing to cause. In one process they now
//! queue for their stream (fairly, in arrival order) and each decides against the state the
//! one before it left. Other processes (PostgreSQL replicas) still race, and their expected
//! versions keep that safe.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use events::TicketId;
use tokio::sync::OwnedMutexGuard;

/// Streams remembered before the unused ones are forgotten: memory follows the streams being
/// written now, not every stream ever written.
const FORGET_AT: usize = 4096;

/// Each stream's turn.
#[derive(Default)]
pub struct Turns {
    streams: Mutex<HashMap<TicketId, Arc<tokio::sync::Mutex<()>>>>,
}

impl Turns {
    /// Waits for `stream`'s turn; it lasts as long as the guard.
    pub async fn take(&self, stream: &TicketId) -> OwnedMutexGuard<()> {
        let turn = {
            let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
            if streams.len() >= FORGET_AT {
                // Held or waited for: someone has a clone.
                streams.retain(|_, turn| Arc::strong_count(turn) > 1);
            }
            streams.entry(stream.clone()).or_default().clone()
        };
        turn.lock_owned().await
    }

    /// How many streams are remembered (for tests).
    pub fn remembered(&self) -> usize {
        self.streams.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: usize) -> TicketId {
        TicketId::parse(&format!("MC-{n}")).unwrap()
    }

    #[tokio::test]
    async fn one_turn_at_a_time_per_stream_and_others_go_on() {
        let turns = Arc::new(Turns::default());
        let held = turns.take(&t(1)).await;
        // Another stream is not held up.
        let other = turns.take(&t(2)).await;
        drop(other);
        // The same stream waits for the turn to end.
        let waiter = tokio::spawn({
            let turns = turns.clone();
            async move {
                let _turn = turns.take(&t(1)).await;
            }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "a second writer of MC-1 went while the first held it"
        );
        drop(held);
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn streams_no_longer_written_are_forgotten() {
        let turns = Turns::default();
        let held = turns.take(&t(0)).await;
        for n in 1..FORGET_AT + 10 {
            drop(turns.take(&t(n)).await);
        }
        assert!(turns.remembered() < FORGET_AT, "{}", turns.remembered());
        // The held one was kept: a writer arriving now still waits for it.
        let first = t(0);
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), turns.take(&first));
        assert!(again.await.is_err(), "the held turn was forgotten");
        drop(held);
    }
}
