//! Workshop Hub: a local AI gateway. Connect providers once, give apps their own keys,
//! forward their calls with the stored provider key, and meter what they spend.

pub mod app;
pub mod catalog;
pub mod cli;
pub mod compat;
pub mod config;
pub mod emulator;
pub mod gateway;
pub mod hub;
pub mod ledger;
pub mod money;
pub mod providers;
pub mod run;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod vault;
pub mod web;
