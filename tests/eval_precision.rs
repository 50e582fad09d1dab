//! Evaluation runs in f32 whatever precision a run trains in (`tessera::run::precision::in_f32`):
//! the scope sets f32 and restores the run's precision after, also after a panic. Its own test
//! binary, because the precision is process-wide and other tests compare f32 results.

use tessera::run::precision::in_f32;
use tessera_tensor::{float32_matmul_precision, set_float32_matmul_precision, MatmulPrecision};

#[test]
fn in_f32_sets_f32_and_restores_the_training_precision() {
    set_float32_matmul_precision(MatmulPrecision::Bf16);
    let inside = in_f32(float32_matmul_precision);
    assert_eq!(inside, MatmulPrecision::Highest);
    assert_eq!(float32_matmul_precision(), MatmulPrecision::Bf16);

    let caught = std::panic::catch_unwind(|| in_f32(|| panic!("evaluation failed")));
    assert!(caught.is_err());
    assert_eq!(float32_matmul_precision(), MatmulPrecision::Bf16);
    set_float32_matmul_precision(MatmulPrecision::Highest);
}
