//! The whole op suite, written once generically over `B: Backend`, run on the CPU backend and
//! on `Counting` (opaque storage, every primitive delegated to the CPU and counted, composites
//! left to their default compositions). Results must be bit-identical between the two, known
//! values are checked, and the counters prove which primitives each composite was built from
//! and that no composite round-trips through the host.
//!
//! One test per op family, so that a family still being written fails on its own.
//!
//! One test binary, one module per concern:
//!
//! | module | holds |
//! |---|---|
//! | `support` | shared helpers: recording outputs, building inputs, checking values |
//! | `elementwise` | unary, binary/compare/where, casts-copies-views and RNG families |
//! | `reductions` | reduce, matmul, softmax and norm families |
//! | `images` | conv, pooling and interpolation families |
//! | `indexing` | index, concat and pad families |
//! | `harness` | runs each family on both backends and compares (the per-family tests) |
//! | `composites` | composites built from primitives on the device; transfers; errors |

#[path = "../common/opaque_backend.rs"]
mod opaque_backend;

mod composites;
mod elementwise;
mod harness;
mod images;
mod indexing;
mod reductions;
mod support;
