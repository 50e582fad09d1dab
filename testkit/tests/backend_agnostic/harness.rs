//! Runs every family on both backends and compares them: one test per family, and one over
//! the whole suite that checks every primitive of the trait was exercised.

use tessera_tensor::{Backend, Cpu, DType};
use tessera_testkit::backends::Counting;
use tessera_testkit::ops::{run_family, Outputs, FAMILIES};

/// A family's outputs, or why it failed (an error or a panic).
type FamilyResult = std::result::Result<Outputs, String>;

/// Runs the whole suite on `b`: each family's outputs, or why it failed (an error or a
/// panic), so that one unfinished family does not hide the others.
fn suite<B: Backend>(b: &B) -> Vec<(&'static str, FamilyResult)> {
    FAMILIES
        .iter()
        .map(|(name, _)| (*name, run(b, name)))
        .collect()
}

fn run<B: Backend>(b: &B, family: &str) -> FamilyResult {
    run_family(b, family).map_err(|f| f.detail)
}

/// Families whose CPU path overrides a composite op (softmax, layer norm, the convolutions as
/// one GEMM over the batch): the counting backend runs the composite default, so the two agree
/// to a few ulps (a different summation order), not bit for bit. Every other family runs the
/// same primitive kernels on both and must be bit-exact.
const FUSED_ON_CPU: &[&str] = &["softmax", "norm", "conv"];

/// True if `p` and `q` agree to a few ulps of `dtype` (NaN equal to NaN).
pub(crate) fn ulps_close(p: f64, q: f64, dtype: DType) -> bool {
    let eps = match dtype {
        DType::F64 => f64::EPSILON,
        DType::F32 => f32::EPSILON as f64,
        _ => 1e-2,
    };
    (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= 8.0 * eps * q.abs().max(1.0)
}

/// Equality of two runs: bit-exact, or within a few ulps for [`FUSED_ON_CPU`] families.
fn assert_same(family: &str, a: &Outputs, b: &Outputs) {
    assert_eq!(a.len(), b.len(), "{family}: different number of outputs");
    for ((na, sa, da), (nb, sb, db)) in a.iter().zip(b) {
        assert_eq!(na, nb);
        assert_eq!(sa, sb, "{family}/{na}: shapes differ");
        assert_eq!(da.dtype(), db.dtype(), "{family}/{na}: dtypes differ");
        let (x, y) = (da.to_f64_vec(), db.to_f64_vec());
        assert_eq!(x.len(), y.len(), "{family}/{na}: lengths differ");
        let fused = FUSED_ON_CPU.contains(&family);
        assert!(
            x.iter()
                .zip(&y)
                .all(|(p, q)| p.to_bits() == q.to_bits()
                    || (fused && ulps_close(*p, *q, da.dtype()))),
            "{family}/{na}: cpu {x:?} vs counting {y:?}"
        );
    }
}

/// Runs one family on both backends and compares.
fn both(family: &str) {
    let cpu = run(&Cpu, family).unwrap_or_else(|e| panic!("{family} on cpu: {e}"));
    let counting = Counting::new();
    let opaque = run(&counting, family).unwrap_or_else(|e| panic!("{family} on counting: {e}"));
    assert!(!cpu.is_empty());
    assert_same(family, &cpu, &opaque);
    // Results left the opaque backend only through `to_host`.
    assert!(counting.count("to_host") >= opaque.len());
}

macro_rules! family_tests {
    ($($test:ident => $family:literal;)*) => {$(
        #[test]
        fn $test() {
            both($family);
        }
    )*};
}

family_tests! {
    unary_ops_agree => "unary";
    binary_compare_where_agree => "binary";
    reductions_agree => "reduce";
    matmul_agrees => "matmul";
    softmax_agrees => "softmax";
    layer_and_batch_norm_agree => "norm";
    conv2d_and_backward_agree => "conv";
    pooling_agrees => "pool";
    index_gather_scatter_agree => "index";
    cat_stack_split_chunk_agree => "concat";
    pad_agrees => "pad";
    bicubic_interpolate_agrees => "interpolate";
    casts_copies_and_views_agree => "copy";
    rng_agrees => "rng";
}

/// The whole suite on the counting backend touches every primitive of the trait.
#[test]
fn whole_suite_covers_every_primitive() {
    let counting = Counting::new();
    let results = suite(&counting);
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(n, r)| r.as_ref().err().map(|e| format!("{n}: {e}")))
        .collect();
    let cpu = suite(&Cpu);
    for ((name, o), (_, c)) in results.iter().zip(&cpu) {
        if let (Ok(o), Ok(c)) = (o, c) {
            assert_same(name, c, o);
        }
    }
    let counts = counting.counts();
    let primitives = [
        "from_host",
        "to_host",
        "copy_into",
        "cast",
        "unary",
        "binary",
        "compare",
        "where_cond",
        "reduce",
        "matmul",
        "index_select",
        "gather",
        "scatter_add",
        "im2col",
        "col2im",
        "max_pool2d",
        "avg_pool2d",
        "avg_pool2d_backward",
        "adaptive_avg_pool2d",
        "adaptive_avg_pool2d_backward",
        "upsample_bicubic2d",
        "upsample_bicubic2d_backward",
    ];
    let missing: Vec<&str> = primitives
        .iter()
        .copied()
        .filter(|p| counts.get(p).copied().unwrap_or(0) == 0)
        .collect();
    assert!(
        failed.is_empty() && missing.is_empty(),
        "families failed: {failed:#?}\nprimitives never run: {missing:?}\ncounts: {counts:?}"
    );
}
