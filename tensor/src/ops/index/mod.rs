//! (being written)
pub(crate) mod cpu;
