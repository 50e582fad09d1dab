//! Every op family again with the shim running the threads of each block in reverse and in a
//! shuffled order: a kernel that misses a `__syncthreads` (or relies on warp lockstep) gives
//! different results in some order, and the comparison with the CPU catches it.
//!
//! One test in its own binary, because the schedule is a process-wide setting.
#![cfg(feature = "sim")]

use tessera_cuda::driver::sim::{set_schedule, Schedule};
use tessera_cuda::Cuda;
use tessera_testkit::{assert_pass, ops, ToleranceTable};

#[test]
fn op_families_pass_in_every_thread_order() {
    let dev = Cuda::sim().expect("the SIMT shim device");
    let tol = ToleranceTable::default();
    for s in [Schedule::Reverse, Schedule::Shuffled, Schedule::Forward] {
        set_schedule(s);
        assert_pass(ops::check_ops(&dev, &tol));
        println!(
            "CONFORMANCE sim schedule {s:?}: {} op families passed",
            ops::FAMILIES.len()
        );
    }
}
