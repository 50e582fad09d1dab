//! Every op honors views: for random shapes (rank 1-4, dims 1-5) and random views of them
//! (sliced with steps, narrowed and broadcast with stride 0, permuted), `op(view)` equals
//! `op(view.contiguous())`. Inputs are multiples of 1/16 in [-2, 2), so sums and products are
//! exact in f64 whatever the order and the comparisons can be bit-exact; the few ops whose
//! results go through transcendental functions in different association orders use a 1e-12
//! relative tolerance. Plus properties of layouts: reshape as a view vs a copy, symmetric
//! broadcasting, and `narrow`/`slice` offsets against a naive index computation.
//!
//! One test binary, one module per concern:
//!
//! | module | holds |
//! |---|---|
//! | `inputs` | the test-data stream and the random-view generator (`Spec`) |
//! | `compare` | bit-exact and 1e-12 comparisons, the contiguous copy, the proptest config |
//! | `elementwise` | unary and broadcasting binary ops (compare, `where_cond`) on views |
//! | `reductions` | reductions, matmul on transposed operands, softmax and norms |
//! | `spatial` | conv2d, pooling and bicubic resizing on permuted inputs |
//! | `indexing` | index_select/gather/scatter_add, cat/stack/split and pad |
//! | `layouts` | reshape as a view vs a copy, symmetric broadcasting, narrow/slice offsets |
//! | `edge_cases` | empty and scalar views; the view generator is not vacuous |

use tessera_tensor::{Cpu, Tensor};

type T = Tensor<Cpu>;

mod compare;
mod edge_cases;
mod elementwise;
mod indexing;
mod inputs;
mod layouts;
mod reductions;
mod spatial;
