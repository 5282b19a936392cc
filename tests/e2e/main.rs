//! End-to-end tests: the real API over real PostgreSQL, one fresh database per test.
//! Needs `DATABASE_URL` (a role that may create databases); `scripts/test.sh` sets it.
#![forbid(unsafe_code)]

mod api_errors;
mod api_wallets;
mod batched;
mod bonus;
mod brands;
mod concurrency;
mod edges;
mod expiry_limits;
mod fuzz;
mod hardening;
mod history;
mod hub88;
mod idempotency;
mod instances;
mod killed_instance;
mod log_order;
mod ops;
mod protection;
mod provider;
mod provider_model;
mod read_side;
mod replay;
mod rounds;
