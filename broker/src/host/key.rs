//! The `Idempotency-Key` object's host (named `{topic}/{key}`), over
//! [`kafdo_ingest::IdempotencyKey`]. The broker drives a keyed produce through it
//! ([`crate::ingest`]).
//!
//! Expiry: after every step the alarm is armed for the key's expiry; the alarm forgets the
//! expired key and, when the object holds nothing more, deletes all of its storage (and with it
//! the alarm), so an expired key costs nothing.

use kafdo_ingest::{Begin, BeginRequest, IdempotencyKey, IngestError};
use kafdo_sql::Sql;
use kafdo_types::rpc::{KeyBegin, KeyBeginAnswer, KeyCall, KeyComplete, KeyRelease};
use kafdo_types::ApiError;

use super::{reply, Alarm, Effects, Served};

fn api_error(e: IngestError) -> ApiError {
    ApiError::new(e.code(), e.to_string())
}

/// A key object's memory: its core and its armed alarm.
pub struct KeyHost<S: Sql> {
    sql: S,
    core: Option<IdempotencyKey<S>>,
    alarm: Alarm,
}

impl<S: Sql + Clone> KeyHost<S> {
    /// A host over the object's storage.
    pub fn new(sql: S) -> Self {
        Self {
            sql,
            core: None,
            alarm: Alarm::default(),
        }
    }

    /// The instance lost its memory.
    pub fn restart(&mut self) {
        self.core = None;
        self.alarm.forget();
    }

    /// Arming the alarm failed: the next step arms again.
    pub fn alarm_failed(&mut self) {
        self.alarm.forget();
    }

    /// The core, opened if it is not.
    pub fn core(&mut self) -> Result<&mut IdempotencyKey<S>, ApiError> {
        if self.core.is_none() {
            self.core = Some(IdempotencyKey::open(self.sql.clone()).map_err(api_error)?);
        }
        Ok(self.core.as_mut().expect("opened above"))
    }

    /// Serves one call.
    pub fn serve(&mut self, call: KeyCall, now_ms: i64) -> Served {
        let answer = match call {
            KeyCall::Begin(req) => reply::<KeyBegin>(self.begin(req, now_ms)),
            KeyCall::Complete(req) => reply::<KeyComplete>(self.core().and_then(|core| {
                core.complete(req.producer_id, req.attempt, &req.offsets, now_ms)
                    .map_err(api_error)
            })),
            KeyCall::Release(req) => reply::<KeyRelease>(self.core().and_then(|core| {
                core.release(req.producer_id, req.attempt, now_ms)
                    .map_err(api_error)
            })),
        };
        Served {
            answer,
            effects: self.after_step(),
        }
    }

    fn begin(&mut self, req: KeyBegin, now_ms: i64) -> Result<KeyBeginAnswer, ApiError> {
        let begin = BeginRequest {
            fingerprint: req.fingerprint,
            producer_id: req.producer_id,
            lease_ms: req.lease_ms,
            ttl_ms: req.ttl_ms,
            partitions: req.partitions,
        };
        match self.core()?.begin(&begin, now_ms) {
            Ok(Begin::Proceed {
                producer_id,
                attempt,
                partitions,
            }) => Ok(KeyBeginAnswer::Proceed {
                producer_id,
                attempt,
                partitions,
            }),
            Ok(Begin::Done { offsets }) => Ok(KeyBeginAnswer::Done { offsets }),
            // The in-flight conflict travels as a value, not an error: the broker turns it into
            // `IDEMPOTENCY_KEY_IN_FLIGHT` with its own message.
            Err(IngestError::InFlight { retry_after_ms }) => {
                Ok(KeyBeginAnswer::InFlight { retry_after_ms })
            }
            Err(e) => Err(api_error(e)),
        }
    }

    /// The alarm fired: forget the key if it expired; an object left empty deletes its storage.
    pub fn on_alarm(&mut self, now_ms: i64) -> Effects {
        self.alarm.fired();
        match self
            .core()
            .and_then(|core| core.on_alarm(now_ms).map_err(api_error))
        {
            Ok(true) => {
                // Nothing is left: the storage (and the alarm) go, and the core with them.
                self.core = None;
                Effects {
                    delete_storage: true,
                    ..Effects::default()
                }
            }
            Ok(false) => self.after_step(),
            Err(e) => {
                tracing::error!("idempotency key alarm: {}", e.message);
                self.after_step()
            }
        }
    }

    fn after_step(&mut self) -> Effects {
        let Some(core) = self.core.as_ref() else {
            return Effects::default();
        };
        Effects {
            set_alarm_ms: self
                .alarm
                .after_step_of(core.next_alarm_ms(), "idempotency key"),
            ..Effects::default()
        }
    }
}
