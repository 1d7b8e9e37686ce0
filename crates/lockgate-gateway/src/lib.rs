//! The LLM gateway's core: what an agent's credential allows ([`credential`]) and what a
//! model call costs ([`price`]). Agents call models through Lockgate with these
//! credentials and never see provider keys; budgets are reserved in the ledger before
//! each upstream call (see `lockgate-store`'s budget ledger).
//!
//! Pure logic, no IO: the server crate wires it to HTTP and the database.

pub mod anomaly;
pub mod api;
pub mod cache;
pub mod credential;
pub mod price;
