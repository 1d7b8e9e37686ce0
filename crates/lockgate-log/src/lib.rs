//! Lockgate's transparency log.
pub mod batch;
pub mod checkpoint;
pub mod dir;
pub mod log;
pub mod merkle;
pub mod proof;
pub mod storage;
pub mod tiles;
