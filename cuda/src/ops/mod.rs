//! One file per op family, named like the tensor crate's op folders; each launches the
//! kernels of the `.cu` file with the same stem in `kernels/`.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod copy;
pub mod index;
pub mod interpolate;
pub mod matmul;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod unary;
pub mod update;
