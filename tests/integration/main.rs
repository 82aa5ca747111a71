//! rlock's integration tests: the real binary against real `redis-server` processes.
//!
//! One test binary (faster to build and link than one per file); one module per behaviour; the
//! fixture layer is `support`.

mod bad_input;
mod by_hand;
mod completion_shells;
mod connecting;
mod cron;
mod dying;
mod examples;
mod fixture;
mod generated;
mod install;
mod list;
mod messages;
mod misbehaving;
mod modes;
mod operating;
mod queue;
mod redlock;
mod run;
mod servers;
mod signals;
mod standby;
mod support;
mod terminal;
mod waiting;
