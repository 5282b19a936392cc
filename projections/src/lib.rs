//! The read side's moving parts: the relay (event log to RabbitMQ, in commit order, with
//! publisher confirms) and the projection workers (RabbitMQ to the Redis read models).
//!
//! # Layout
//! - [`amqp`]: the RabbitMQ topology (a topic exchange, partitions by wallet, quorum
//!   queues, dead letters), the batch format, connecting, publisher confirms.
//! - [`relay`]: tails `eventstore::log` and publishes each page as one batch per
//!   partition; checkpoint in Postgres after the confirm.
//! - [`worker`]: consumes a partition and projects each batch's events, wallets side by
//!   side, with `readmodel::project`
//!   (the sequence-fenced apply, gaps filled from the log); dead-letters poison.
//! - [`heal`]: after a Redis failover, re-projects the wallets applied to lately that the
//!   new master lacks (Redis replicates asynchronously).
//! - [`shutdown`]: the stop signal and reconnect backoff both share.
//! - [`watch`]: gauges of the read side's dependencies (log hold-back, relay lag in events,
//!   queue depths, Redis, the last reconcile) for the operators' alerts.
//! - [`cli`]: options the binaries share.
//!
//! Only the RabbitMQ side lives here: what an event does to Redis is `readmodel`'s.
#![forbid(unsafe_code)]

pub mod amqp;
pub mod cli;
pub mod heal;
pub mod relay;
pub mod shutdown;
pub mod watch;
pub mod worker;

pub use amqp::Topology;
pub use relay::{RelayConfig, RelayStats};
pub use worker::{WorkerConfig, WorkerStats};
