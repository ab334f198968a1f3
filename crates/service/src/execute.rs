//! Commands: `decide` → append with the version the decision was made against → answer. A
//! lost race (the log's version moved between decide and append) re-decides against the new
//! state, so decide + append is atomic per ticket. Who writes is authorized first
//! ([`Writer::of`], `projections::authorize`). No HTTP here: the server translates requests
//! to [`Service::execute`] and its [`Outcome`] or [`Failure`] back; the CLI's demo and the
//! agents' MCP server call it directly.

use std::time::Instant;

use events::{Actor, EventData, NewEvent, RecordedEvent, TicketId};
use projections::{
    decide, turn_nonce, Command, Context, Decision, EventRef, Operation, Refused, Rejection,
};
use serde::Serialize;
use store::{AppendRequest, LogError};
use utoipa::ToSchema;

use crate::clock::{new_ulid, now, random_u32};
use crate::state::Shared;
use crate::tokens::Caller;
use crate::Service;

/// How long, in all, a command that loses races waits for the winners' events to be folded
/// before deciding again (a flush takes milliseconds; a stalled disk answers 503 on its own).
const FOLD_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Times a command is re-decided after losing a race on its ticket stream.
const RACE_RETRIES: usize = 16;

/// What a command came to.
#[derive(Debug)]
pub enum Outcome {
    /// Appended (HTTP 201).
    Created(WriteResult),
    /// Already applied: nothing appended, the original answered (200).
    Duplicate(WriteResult),
    /// A heartbeat folded into an earlier one; nothing appended (202).
    Coalesced(Coalesced),
}

/// Why a command was not applied.
#[derive(Debug)]
pub enum Failure {
    /// `projections::authorize` said no.
    Refused(Refused),
    /// The body named an actor other than the token's.
    ActorMismatch { token_actor: Actor },
    /// No token and no actor: nobody to record.
    MissingActor,
    /// The rules refused it; a refusal that is itself a fact names where it was recorded.
    Rejected {
        rejection: Rejection,
        recorded_position: Option<u64>,
    },
    /// The store could not take or answer it.
    Log(LogError),
    /// The ticket kept changing under the command for every retry.
    KeptChanging,
    /// A fault of ours (what, and the error).
    Internal(&'static str, String),
}

impl From<LogError> for Failure {
    fn from(e: LogError) -> Failure {
        Failure::Log(e)
    }
}

impl From<Rejection> for Failure {
    fn from(rejection: Rejection) -> Failure {
        Failure::Rejected {
            rejection,
            recorded_position: None,
        }
    }
}

/// Who a command is written by: the token's actor and id, or (without tokens) the body's actor.
#[derive(Debug, Clone)]
pub struct Writer {
    pub actor: Actor,
    pub token_id: Option<String>,
}

impl Writer {
    /// Resolves the writer of a command and asks the one authorization point
    /// (`projections::authorize`) before anything is decided: a body actor other than the
    /// token's is refused; a scope, kind or runtime token that may not take the command's
    /// action on its target is refused naming the rule. Without tokens the body names the
    /// actor and nothing is checked, as before tokens named actors.
    pub fn of(
        shared: &Shared,
        caller: Option<&Caller>,
        body: Option<Actor>,
        command: &Command,
    ) -> Result<Writer, Failure> {
        let Some(caller) = caller else {
            let actor = body.ok_or(Failure::MissingActor)?;
            return Ok(Writer {
                actor,
                token_id: None,
            });
        };
        if let Some(claimed) = body {
            if claimed != caller.actor {
                return Err(Failure::ActorMismatch {
                    token_actor: caller.actor.clone(),
                });
            }
        }
        let principal = caller.principal();
        let op = Operation::Write(command.action());
        shared
            .read(|l| projections::authorize(l, &principal, op, Some(command.target())))
            .map_err(Failure::Refused)?;
        Ok(Writer {
            actor: caller.actor.clone(),
            token_id: Some(caller.token_id.clone()),
        })
    }
}

/// A client's name for one request, so that sending it again (after a timeout, a 503 or a
/// lost connection) applies it once. The events a keyed command appends get ids derived from
/// the key, the writer's token, the route and the body, so a second try is recognised by event
/// id on every store and every replica; the same key with another body or route is another
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    digest: [u8; 16],
}

impl IdempotencyKey {
    pub fn of(key: &[u8], writer: &str, method: &str, path: &str, body: &[u8]) -> IdempotencyKey {
        let mut h = blake3::Hasher::new();
        h.update(b"mc-ledger idempotency-key v1\0");
        for part in [key, writer.as_bytes(), method.as_bytes(), path.as_bytes()] {
            h.update(&u64::try_from(part.len()).unwrap_or(u64::MAX).to_le_bytes());
            h.update(part);
        }
        h.update(body);
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&h.finalize().as_bytes()[..16]);
        IdempotencyKey { digest }
    }

    /// The key of the `n`-th of the commands one keyed request runs (a hook's activity, then
    /// its signal), so each has event ids of its own.
    pub fn part(&self, n: usize) -> IdempotencyKey {
        let mut h = blake3::Hasher::new();
        h.update(b"mc-ledger idempotency-key part v1\0");
        h.update(&self.digest);
        h.update(&u64::try_from(n).unwrap_or(u64::MAX).to_le_bytes());
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&h.finalize().as_bytes()[..16]);
        IdempotencyKey { digest }
    }

    /// The key of a command one keyed request runs, named by what it does rather than by its
    /// place: for a list of commands recomputed on every try (a task list mirrored against the
    /// ticket as it is now), where a place would name another command on a retry.
    pub fn part_named(&self, name: &str) -> IdempotencyKey {
        let mut h = blake3::Hasher::new();
        h.update(b"mc-ledger idempotency-key named part v1\0");
        h.update(&self.digest);
        h.update(name.as_bytes());
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&h.finalize().as_bytes()[..16]);
        IdempotencyKey { digest }
    }

    /// The id of the `index`-th event the keyed command appends.
    pub fn event_id(&self, index: usize) -> String {
        let hex: String = self.digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("ik.{hex}.{index}")
    }
}

/// What a write answers: what was appended, or with `duplicate: true` the original events
/// when the command was already applied.
#[derive(Debug, Serialize, ToSchema)]
pub struct WriteResult {
    /// Present (and true) only on a duplicate: nothing was appended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// The global position of the last event.
    pub position: u64,
    /// The ticket stream's version after the last event.
    pub version: u64,
    pub events: Vec<RecordedEvent>,
    /// Dispatch and retry: the runtime.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
    /// Dispatch and retry: the runtime's turn nonce.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Dispatch and retry, when the server has tokens: the token a worker acts with (as the
    /// runtime's agent, on that runtime and its ticket only, until the runtime ends). Put it in
    /// the worker's environment as `MC_LEDGER_TOKEN`. A duplicate carries it only for the token
    /// that made the original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_token: Option<String>,
}

impl WriteResult {
    pub fn of(appended: store::Appended) -> WriteResult {
        // A multi-stream append (a dispatch into a pool) answers the first stream's version.
        let version = appended
            .events
            .first()
            .and_then(|first| {
                appended
                    .events
                    .iter()
                    .rev()
                    .find(|e| e.ticket == first.ticket)
            })
            .map_or(0, |e| e.version);
        WriteResult {
            duplicate: appended.duplicate.then_some(true),
            position: appended.last_position(),
            version,
            events: appended.events,
            runtime_id: None,
            nonce: None,
            runtime_token: None,
        }
    }
}

/// A heartbeat folded into an earlier one; nothing appended.
#[derive(Debug, Serialize, ToSchema)]
pub struct Coalesced {
    pub coalesced: bool,
    pub ticket: TicketId,
    pub runtime_id: String,
}

impl Service {
    /// Authorizes and runs a command for a caller (`None`: a server without tokens, where
    /// `body_actor` names the writer).
    pub async fn submit(
        &self,
        caller: Option<&Caller>,
        body_actor: Option<Actor>,
        command: Command,
        expected_version: Option<u64>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome, Failure> {
        let writer = Writer::of(&self.shared, caller, body_actor, &command)?;
        self.execute(command, writer, expected_version, key).await
    }

    /// Decides, appends and answers a command whose writer is already authorized.
    pub async fn execute(
        &self,
        command: Command,
        writer: Writer,
        expected_version: Option<u64>,
        key: Option<&IdempotencyKey>,
    ) -> Result<Outcome, Failure> {
        let shared = &self.shared;
        // Its stream's turn (the ticket, or the pool's, budget's or subscription's stream):
        // writers of one stream queue here instead of racing each other to a false 409.
        // Caught up first, so that a runtime just dispatched through another replica is known.
        shared.catch_up()?;
        let stream = shared.read(|ledger| command.ticket_id(ledger));
        let _turn = match &stream {
            Some(stream) => Some(self.turns.take(stream).await),
            None => None,
        };
        if let Some(key) = key {
            // Asked before deciding, and in its turn: the first try may have changed what the
            // decision says (a retried close would be `ticket_closed`), and a first try still
            // under way when this one came ended before this turn began.
            if let Some(events) = self.keyed_original(key).await? {
                shared.metrics.duplicates.inc();
                return self.answer(&command, &writer, false, duplicate(events));
            }
        }
        // Lost races wait for the winners' events to be folded, this long in all.
        let fold_by = Instant::now() + FOLD_WAIT;
        let mut admitted = None;
        for _ in 0..RACE_RETRIES {
            shared.catch_up()?;
            let at = now();
            let decision = shared.read(|ledger| {
                let nonce = command
                    .ticket_id(ledger)
                    .map(|t| turn_nonce(&t, at, random_u32()))
                    .unwrap_or_default();
                let mut ctx = Context::new(at, format!("rt_{}", new_ulid()), nonce)
                    .with_expected_version(expected_version);
                ctx.activity_every_ms = shared.config.activity_every_ms;
                decide(ledger, &command, &ctx)
            });
            let decision = match decision {
                Ok(d) => d,
                Err(rejection) => {
                    shared.metrics.rejected(rejection.code());
                    return Err(rejection.into());
                }
            };
            match decision {
                Decision::Append(a) if !a.also.is_empty() && admitted.is_none() => {
                    // Its turn on the shared streams first, then decided again.
                    admitted = Some(self.admission.lock().await);
                }
                Decision::Append(a) => {
                    let Some(appended) = self.append(&a, key, &writer, (at, fold_by)).await? else {
                        continue;
                    };
                    if appended.duplicate {
                        // A keyed command whose first try committed while this one decided.
                        shared.metrics.duplicates.inc();
                        return self.answer(&command, &writer, false, duplicate(appended.events));
                    }
                    let body = WriteResult {
                        runtime_id: a.runtime_id,
                        nonce: a.nonce,
                        ..WriteResult::of(appended)
                    };
                    return self.answer(&command, &writer, true, body);
                }
                Decision::Duplicate(d) => {
                    shared.metrics.duplicates.inc();
                    let events = self.originals(d.events.clone()).await?;
                    let body = WriteResult {
                        duplicate: Some(true),
                        position: events.last().map_or(0, |e| e.position),
                        version: d.version,
                        events,
                        runtime_id: d.runtime_id,
                        nonce: d.nonce,
                        runtime_token: None,
                    };
                    return self.answer(&command, &writer, false, body);
                }
                Decision::Coalesced { ticket, runtime_id } => {
                    return Ok(Outcome::Coalesced(Coalesced {
                        coalesced: true,
                        ticket,
                        runtime_id,
                    }));
                }
                Decision::Refuse {
                    ticket,
                    expected_version,
                    record,
                    rejection,
                } => {
                    let refusal = projections::Append {
                        ticket,
                        expected_version,
                        events: record,
                        runtime_id: None,
                        nonce: None,
                        also: Vec::new(),
                    };
                    let Some(recorded) = self.append(&refusal, key, &writer, (at, fold_by)).await?
                    else {
                        continue;
                    };
                    shared.metrics.rejected(rejection.code());
                    return Err(Failure::Rejected {
                        rejection,
                        recorded_position: Some(recorded.last_position()),
                    });
                }
            }
        }
        Err(Failure::KeptChanging)
    }

    /// After a lost race: waits until the projections have folded the events it lost to, or
    /// until `fold_by`. They are staged in the log but may not be durable yet (a flush under
    /// way), and the projections fold only durable events: deciding again at once would
    /// decide against the same version and lose again, and every retry could be spent in a
    /// millisecond. A stream the projections do not follow (events without a
    /// `ticket.opened`, from a raw append) is not waited for.
    async fn until_folded(&self, lost: &LogError, fold_by: Instant) -> Result<(), Failure> {
        let LogError::VersionConflict { ticket, actual, .. } = lost else {
            return Ok(());
        };
        let Ok(stream) = TicketId::parse(ticket) else {
            return Ok(());
        };
        loop {
            self.shared.catch_up()?;
            let folded = self.shared.read(|l| l.ticket_version(&stream));
            if folded.is_none_or(|v| v >= *actual) || Instant::now() >= fold_by {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Appends events as they are, without a decision (import, repair): event ids make it
    /// idempotent. Only humans may (`Operation::RawAppend`, authorized by the caller's route).
    pub async fn append_raw(&self, request: AppendRequest) -> Result<Outcome, Failure> {
        let started = Instant::now();
        let count = request.events.len();
        self.shared.writable()?;
        let busy = self.shared.writes.enter();
        let appended = self.store.append(request).await?;
        self.shared.catch_up()?;
        drop(busy);
        if appended.duplicate {
            return Ok(Outcome::Duplicate(WriteResult::of(appended)));
        }
        self.shared.metrics.observe_append(started.elapsed(), count);
        Ok(Outcome::Created(WriteResult::of(appended)))
    }

    /// Appends a decision's events (a keyed command's ids come from its key) and folds them:
    /// `None` when the race was lost (the stream moved since the decision), once the
    /// projections have folded what it lost to.
    async fn append(
        &self,
        decided: &projections::Append,
        key: Option<&IdempotencyKey>,
        writer: &Writer,
        (at, fold_by): (events::Timestamp, Instant),
    ) -> Result<Option<store::Appended>, Failure> {
        let started = Instant::now();
        let count =
            decided.events.len() + decided.also.iter().map(|a| a.events.len()).sum::<usize>();
        // A keyed command's ids are numbered across every stream of the append.
        let mut n = 0;
        let mut events = |datas: &[EventData]| -> Vec<NewEvent> {
            datas
                .iter()
                .map(|data| {
                    let i = n;
                    n += 1;
                    NewEvent {
                        id: key.map_or_else(new_ulid, |k| k.event_id(i)),
                        recorded_at: at,
                        actor: writer.actor.clone(),
                        token_id: writer.token_id.clone(),
                        data: data.clone(),
                    }
                })
                .collect()
        };
        let first = events(&decided.events);
        let also = decided
            .also
            .iter()
            .map(|a| store::StreamAppend {
                ticket: a.ticket.clone(),
                expected_version: Some(a.expected_version),
                events: events(&a.events),
            })
            .collect();
        let request = AppendRequest {
            also,
            ticket: decided.ticket.clone(),
            expected_version: Some(decided.expected_version),
            events: first,
        };
        self.shared.writable()?;
        let appended = {
            let _busy = self.shared.writes.enter();
            self.store.append(request).await
        };
        match appended {
            Ok(appended) => {
                self.shared.metrics.observe_append(started.elapsed(), count);
                self.shared.catch_up()?;
                Ok(Some(appended))
            }
            Err(lost @ LogError::VersionConflict { .. }) => {
                self.until_folded(&lost, fold_by).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The events a keyed command appended on its first try, in order, if it got that far. A
    /// refused signal's record is not an answer: the command is decided again, and its record
    /// is recognised by id when appended (answering the original refusal).
    async fn keyed_original(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<Vec<RecordedEvent>>, Failure> {
        let (reader, key) = (self.shared.reader.clone(), key.clone());
        blocking(move || {
            let Some(first) = reader.event_by_id(&key.event_id(0))? else {
                return Ok(None);
            };
            if matches!(first.data, EventData::RuntimeSignalRejected(_)) {
                return Ok(None);
            }
            let mut events = vec![first];
            for i in 1..events::ids::EVENTS_PER_APPEND_MAX {
                match reader.event_by_id(&key.event_id(i))? {
                    Some(e) => events.push(e),
                    None => break,
                }
            }
            Ok(Some(events))
        })
        .await
    }

    /// The answer; a dispatch or retry also carries the new runtime's token when the server
    /// has tokens. A duplicate carries it only for the token that made the original dispatch
    /// or retry: the token is the worker's, and a dispatch key is readable in the ticket's
    /// events.
    fn answer(
        &self,
        command: &Command,
        writer: &Writer,
        created: bool,
        mut body: WriteResult,
    ) -> Result<Outcome, Failure> {
        let mints = matches!(command, Command::Dispatch { .. } | Command::Retry { .. });
        if let (true, Some(runtime_id)) = (mints, &body.runtime_id) {
            let made_it = created || body.events.iter().any(|e| {
                matches!(&e.data, EventData::RuntimeDispatched(d) if &d.runtime_id == runtime_id)
                    && e.token_id.is_some()
                    && e.token_id == writer.token_id
            });
            if made_it && !self.auth.is_open() {
                let token = self
                    .runtime_tokens
                    .token_for(&self.home, runtime_id)
                    .map_err(|e| Failure::Internal("runtime token", format!("{e:#}")))?;
                body.runtime_token = Some(token);
            }
        }
        Ok(if created {
            Outcome::Created(body)
        } else {
            Outcome::Duplicate(body)
        })
    }

    async fn originals(&self, refs: Vec<EventRef>) -> Result<Vec<RecordedEvent>, Failure> {
        let reader = self.shared.reader.clone();
        blocking(move || {
            let mut out = Vec::with_capacity(refs.len());
            for r in refs {
                let found = reader.read_after(r.position.saturating_sub(1), 1)?;
                out.extend(found.into_iter().filter(|e| e.position == r.position));
            }
            Ok(out)
        })
        .await
    }
}

/// Runs a read that may reach the store on the blocking pool: a PostgreSQL replica reads
/// records older than its copy from the database, and an async worker must never wait on that.
pub(crate) async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, LogError> + Send + 'static,
) -> Result<T, Failure> {
    match tokio::task::spawn_blocking(read).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(Failure::Internal("read task", e.to_string())),
    }
}

/// The original events of a command applied before; dispatch, retry and switch name their
/// runtime and nonce as the first answer did.
fn duplicate(events: Vec<RecordedEvent>) -> WriteResult {
    let runtime = events.iter().rev().find_map(|e| match &e.data {
        EventData::RuntimeDispatched(d) => Some((d.runtime_id.clone(), d.nonce.clone())),
        EventData::RuntimeSwitched(s) => Some((s.runtime_id.clone(), s.nonce.clone())),
        _ => None,
    });
    let (runtime_id, nonce) = runtime.unzip();
    WriteResult {
        duplicate: Some(true),
        position: events.last().map_or(0, |e| e.position),
        version: events.last().map_or(0, |e| e.version),
        events,
        runtime_id,
        nonce,
        runtime_token: None,
    }
}
