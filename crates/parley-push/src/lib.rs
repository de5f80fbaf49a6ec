//! Parley push delivery: Twilio Chat templates and payloads, APNs and FCM senders, retry
//! policy. The fake providers for tests are the `parley-fakes` crate.
//!
//! The worker (outbox consumer, wired later) uses this crate like so:
//!
//! 1. per event and recipient, render the text with [`template::render`] (the service's
//!    [`NotificationSetting`](parley_core::service::NotificationSetting) gives template and
//!    sound) and build a [`Notification`];
//! 2. per binding, open its credential ([`PushCredential::open`]) and build a [`Target`];
//! 3. call [`PushSender::send`] on an `Arc<dyn PushSender>` ([`Providers`] in production,
//!    [`RecordingSender`] in tests) and settle by the [`SendOutcome`], re-scheduling `Retry`
//!    with [`RetryPolicy::next_delay`].
//!
//! Contracts: `shared/spec/push-payloads.md` (texts and payloads), `push-behaviours.md` §4.4
//! (retries, pruning, connections).

pub mod apns;
pub mod fcm;
pub mod notification;
pub mod payload;
pub mod retry;
pub mod sender;
pub mod template;
pub mod worker;

pub use apns::{ApnsConfig, ApnsSender};
pub use fcm::{FcmConfig, FcmSender};
pub use notification::{Notification, NotificationKind};
pub use retry::{send_with_retry, RetryPolicy};
pub use sender::{Providers, PushCredential, PushSender, RecordingSender, SendOutcome, Target};
pub use template::{render, TemplateVars};
pub use worker::{PushMetrics, RunOutcome, Worker, WorkerConfig};
