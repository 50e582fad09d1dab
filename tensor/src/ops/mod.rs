//! Tensor operations, one folder per op family: `mod.rs` holds the front end on
//! [`Tensor`](crate::Tensor) (argument checks, shape logic, docs, tests) and `cpu.rs` the CPU
//! reference kernel. Backward passes live in the same-named module of `tessera-autograd`.

pub mod binary;
pub mod concat;
pub mod conv;
pub mod index;
pub mod inplace;
pub mod interpolate;
pub mod matmul;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod softmax;
mod spatial;
pub mod unary;
