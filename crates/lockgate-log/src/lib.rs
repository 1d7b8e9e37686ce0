//! Lockgate's transparency log.
pub mod batch;
pub mod checkpoint;
pub mod log;
pub mod merkle;
pub mod storage;
pub mod tiles;
