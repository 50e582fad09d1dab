//! Backends for testing the front end and the kit itself.
//!
//! [`Counting`] runs the CPU's kernels behind opaque storage and implements only the
//! required primitives of [`Backend`](tessera_tensor::Backend), so every composite op runs
//! through its default composition; it counts primitive calls. It is the stand-in for a new
//! device backend: a check that passes on [`Cpu`](tessera_tensor::Cpu) but fails on
//! `Counting` depends on something a device backend does not have.

mod counting;

pub use counting::{Counting, OpaqueStorage};
