//! Parley webhooks: the calls Twilio Programmable Chat makes to a service's pre- and post-event
//! URLs and to channel webhooks (spec: webhooks.md; user documentation: `docs/webhooks.md`).
//!
//! This crate knows the change-log [`Event`](parley_core::event::Event) and nothing of storage:
//!
//! * [`post_event`] turns an event into a [`PostEvent`] (Twilio name + form parameters);
//! * [`service_post_target`], [`service_pre_target`] and [`channel_hook_wants`] decide who
//!   receives it;
//! * [`WebhookClient::send`] makes one signed attempt of a [`Call`] and reports an [`Outcome`]
//!   (retry with [`Outcome::is_retryable`] and [`backoff`]);
//! * [`pre_event_params`] and [`call_pre_event`] run a synchronous pre-event and return a
//!   [`PreOutcome`] (proceed, possibly modified, or reject);
//! * [`signature`] is the `X-Twilio-Signature` algorithm.

mod client;
mod metrics;
mod params;
mod policy;
mod post;
mod pre;
mod route;
mod sign;
mod tokens;
pub mod worker;

pub use client::{
    backoff, backoff_with, Call, ClientError, Outcome, WebhookClient, WebhookConfig,
    CODE_ERROR_ANSWER, CODE_TIMEOUT, USER_AGENT,
};
pub use metrics::WebhookMetrics;
pub use params::{attributes, known_event, webhook_date, POST_EVENTS, PRE_EVENTS};
pub use policy::{DestinationPolicy, PolicyError, Refused, ALLOW_ENV, DENY_ENV};
pub use post::{post_event, PostEvent, REST_ACTOR};
pub use pre::{
    call_pre_event, modifiable_fields, parse_answer, pre_event_params, PreChanges, PreContext,
    PreEvent, PreOutcome, PreParams, PreRejection, CODE_REJECTED,
};
pub use route::{
    channel_hook_wants, filters_include, service_post_target, service_pre_target, trigger_matches,
    Method, Target, MAX_RETRY_COUNT,
};
pub use sign::{signature, SIGNATURE_HEADER};
pub use tokens::{AuthTokens, TOKEN_TTL};
pub use worker::{QueueMetrics, RunOutcome, Worker, WorkerConfig, CONSUMER};
