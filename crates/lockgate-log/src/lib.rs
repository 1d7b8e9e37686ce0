//! Lockgate's transparency log.
pub mod checkpoint;
pub mod merkle;
