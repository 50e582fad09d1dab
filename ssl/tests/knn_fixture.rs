//! DINO's weighted k-NN against PyTorch (`scripts/gen_ssl_fixtures.py`, which reimplements
//! `eval_knn.py` `knn_classifier`): identical predictions and accuracies for k = 10 and 20.

#[path = "../../tensor/tests/common/fixtures.rs"]
mod fixtures;

use tessera_ssl::eval::{knn_classifier, KnnConfig};
use tessera_tensor::{Cpu, DType, Tensor};

#[test]
fn knn_matches_pytorch_reference() {
    let fx = fixtures::Fixtures::open("ssl_knn.safetensors");
    let case = fx.case("knn");
    let ks = case.param("ks").usize_vec();
    let temperature = case.param("temperature").as_f64();
    let num_classes = case.param("num_classes").as_usize();
    let labels = |name: &str| -> Vec<u32> {
        case.get(name)
            .to_i64()
            .into_iter()
            .map(|l| u32::try_from(l).unwrap())
            .collect()
    };
    let (train_labels, test_labels) = (labels("train_labels"), labels("test_labels"));
    let tensor = |name: &str, dtype: DType| {
        let a = case.get(name);
        Tensor::from_vec(a.to_f64(), &a.shape, &Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    // f64 reproduces the reference exactly; f32 must agree too (the generator guarantees
    // every decision has a margin above f32 rounding). Chunk sizes differ from the script's
    // 16 to show that chunking does not matter.
    for (dtype, chunk_size) in [(DType::F64, 7), (DType::F32, 50), (DType::F32, 1)] {
        let cfg = KnnConfig {
            ks: ks.clone(),
            temperature,
            chunk_size,
        };
        let results = knn_classifier(
            &tensor("train", dtype),
            &train_labels,
            &tensor("test", dtype),
            &test_labels,
            num_classes,
            &cfg,
        )
        .unwrap();
        for r in &results {
            let k = r.k;
            let want: Vec<u32> = labels(&format!("pred_k{k}"));
            assert_eq!(r.predictions, want, "{dtype} k={k}: predictions");
            let top1 = case.get(&format!("top1_k{k}")).to_f64()[0];
            let top5 = case.get(&format!("top5_k{k}")).to_f64()[0];
            assert_eq!(r.top1, top1, "{dtype} k={k}: top-1");
            assert_eq!(r.top5, Some(top5), "{dtype} k={k}: top-5");
        }
    }
}
