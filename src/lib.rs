//! Workshop Hub: a local AI gateway. Connect providers once, give apps their own keys,
//! forward their calls with the stored provider key, and meter what they spend.

pub mod catalog;
pub mod emulator;
pub mod money;
pub mod providers;
pub mod web;
