//! The whole op suite, written once generically over `B: Backend`, run on the CPU backend and
//! on `Counting` (opaque storage, every primitive delegated to the CPU and counted, composites
//! left to their default compositions). Results must be bit-identical between the two, known
//! values are checked, and the counters prove which primitives each composite was built from
//! and that no composite round-trips through the host.
//!
//! One test per op family, so that a family still being written fails on its own.
//!
//! The families themselves live in the kit (`tessera_testkit::ops`), where any backend can
//! run them against the CPU within a tolerance; this binary holds the stricter checks that
//! only make sense for `Counting`, which runs the CPU's own kernels:
//!
//! | module | holds |
//! |---|---|
//! | `harness` | runs each family on both backends and compares bit for bit (per family) |
//! | `composites` | composites built from primitives on the device; transfers; errors |

mod composites;
mod harness;
